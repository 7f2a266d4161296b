// aadgate session script: when a background request (a Dash callback, fetch or
// XHR) is answered 401 {"error":"login_required"} because the session ended,
// send the user through sign-in and back to this page instead of leaving the
// page silently broken. Served at /auth/session.js; no dependencies.
(function () {
  "use strict";
  if (window.__aadgateSession) return;
  window.__aadgateSession = true;
  var leaving = false;
  // Sign-in at the answer's login_url when it names one (behind forward-auth
  // it is on aadgate's own host, and the page's full URL goes with it),
  // else at this host's /auth/login.
  function signIn(loginUrl) {
    if (leaving) return;
    leaving = true;
    var here = window.location.pathname + window.location.search + window.location.hash;
    var login = "/auth/login";
    try {
      if (loginUrl) {
        var u = new URL(loginUrl, window.location.href);
        if (u.origin !== window.location.origin) {
          login = u.origin + u.pathname;
          here = window.location.href;
        }
      }
    } catch (e) { /* keep the local sign-in */ }
    window.location.assign(login + "?rd=" + encodeURIComponent(here));
  }
  // The login_url of a 401 {"error":"login_required"} answer ("" when it
  // names none), or null for any other answer.
  function isLoginRequired(status, contentType, text) {
    if (status !== 401 || !/json/.test(contentType || "")) return null;
    try {
      var body = JSON.parse(text);
      return body.error === "login_required" ? (body.login_url || "") : null;
    } catch (e) { return null; }
  }
  if (window.fetch) {
    var originalFetch = window.fetch;
    window.fetch = function () {
      return originalFetch.apply(this, arguments).then(function (response) {
        if (response.status === 401) {
          response.clone().text().then(function (text) {
            var login = isLoginRequired(401, response.headers.get("content-type"), text);
            if (login !== null) signIn(login);
          });
        }
        return response;
      });
    };
  }
  var open = XMLHttpRequest.prototype.open;
  XMLHttpRequest.prototype.open = function () {
    this.addEventListener("load", function () {
      if (this.status === 401 && (this.responseType === "" || this.responseType === "text")) {
        var login = isLoginRequired(this.status, this.getResponseHeader("content-type"), this.responseText);
        if (login !== null) signIn(login);
      }
    });
    return open.apply(this, arguments);
  };
})();
