// aadgate session script: when a background request (a Dash callback, fetch or
// XHR) is answered 401 {"error":"login_required"} because the session ended,
// send the user through sign-in and back to this page instead of leaving the
// page silently broken. Served at /auth/session.js; no dependencies.
(function () {
  "use strict";
  if (window.__aadgateSession) return;
  window.__aadgateSession = true;
  var leaving = false;
  function signIn() {
    if (leaving) return;
    leaving = true;
    var here = window.location.pathname + window.location.search + window.location.hash;
    window.location.assign("/auth/login?rd=" + encodeURIComponent(here));
  }
  function isLoginRequired(status, contentType, text) {
    if (status !== 401 || !/json/.test(contentType || "")) return false;
    try { return JSON.parse(text).error === "login_required"; } catch (e) { return false; }
  }
  if (window.fetch) {
    var originalFetch = window.fetch;
    window.fetch = function () {
      return originalFetch.apply(this, arguments).then(function (response) {
        if (response.status === 401) {
          response.clone().text().then(function (text) {
            if (isLoginRequired(401, response.headers.get("content-type"), text)) signIn();
          });
        }
        return response;
      });
    };
  }
  var open = XMLHttpRequest.prototype.open;
  XMLHttpRequest.prototype.open = function () {
    this.addEventListener("load", function () {
      if (this.status === 401 && (this.responseType === "" || this.responseType === "text") &&
          isLoginRequired(this.status, this.getResponseHeader("content-type"), this.responseText)) {
        signIn();
      }
    });
    return open.apply(this, arguments);
  };
})();
