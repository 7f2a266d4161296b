// Shows a notice when aadgate refuses a Dash callback for lack of a role
// (403 {"error":"forbidden","required_role":"App.Write"}). Dash itself only
// reports failed callbacks in debug mode. UI only: the refusal is aadgate's.
(function () {
  if (window.__deniedNotice) return;
  window.__deniedNotice = true;
  const originalFetch = window.fetch;

  function show(role) {
    let box = document.getElementById("denied-notice");
    if (!box) {
      box = document.createElement("div");
      box.id = "denied-notice";
      box.className = "denied-notice";
      box.setAttribute("role", "alert");
      document.body.append(box);
    }
    box.replaceChildren();
    const title = document.createElement("strong");
    title.textContent = "Not allowed";
    const text = document.createElement("span");
    text.textContent = role
      ? "This action needs the " + role + " role. Ask an administrator to assign it to you."
      : "You do not have the role this action needs.";
    const close = document.createElement("button");
    close.type = "button";
    close.setAttribute("aria-label", "Close");
    close.textContent = "\u00d7";
    close.onclick = () => box.remove();
    box.append(title, text, close);
    clearTimeout(show.timer);
    show.timer = setTimeout(() => box.remove(), 10000);
  }

  window.fetch = async function (...args) {
    const response = await originalFetch.apply(this, args);
    const url = String(args[0] && args[0].url ? args[0].url : args[0]);
    if (response.status === 403 && url.includes("_dash-update-component")) {
      response.clone().json().then(
        body => { if (body && body.error === "forbidden") show(body.required_role); },
        () => {}
      );
    }
    return response;
  };
})();
