/* "Who can make changes": the signed-in browsers and the app tokens (GET /api/sessions, /api/tokens),
   each with a button that ends it (DELETE). Shown to a signed-in owner; loaded when opened. Ending one
   takes two taps, so a wet thumb does not cut Home Assistant off by accident. */
"use strict";

window.StoneAccess = (function () {
  const CONFIRM_MS = 4000;  // the second tap must come within this
  const $ = (id) => document.getElementById(id);
  let api = null, hhmm = null, loads = 0;

  function device(userAgent) {
    const ua = String(userAgent || "");
    const os = [["iPhone", "iPhone"], ["iPad", "iPad"], ["Android", "Android"], ["Mac OS", "Mac"],
      ["Windows", "Windows"], ["Linux", "Linux"]].find(([k]) => ua.includes(k));
    const browser = [["Firefox", "Firefox"], ["Edg/", "Edge"], ["Chrome", "Chrome"], ["Safari", "Safari"]]
      .find(([k]) => ua.includes(k));
    return [browser && browser[1], os && `on ${os[1]}`].filter(Boolean).join(" ") || "a browser";
  }

  function when(wallS) {
    if (!wallS) return "";
    const d = new Date(wallS * 1000), today = new Date();
    return d.toDateString() === today.toDateString() ? hhmm(wallS) : `${d.toLocaleDateString()} ${hhmm(wallS)}`;
  }

  function row(text, buttonLabel, end) {
    const li = document.createElement("li");
    const span = document.createElement("span");
    span.textContent = text;
    li.append(span);
    if (end) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = buttonLabel;
      let armed = null;
      button.addEventListener("click", async () => {
        if (!armed) {
          button.textContent = "Tap again to confirm";
          armed = setTimeout(() => { armed = null; button.textContent = buttonLabel; }, CONFIRM_MS);
          return;
        }
        clearTimeout(armed);
        button.disabled = true;
        try { await end(); $("access-msg").textContent = "Done."; } catch (e) { $("access-msg").textContent = e.message; }
        load();
      });
      li.append(button);
    }
    return li;
  }

  async function load() {
    const mine = ++loads;
    try {
      const [s, t] = await Promise.all([api("GET", "/api/sessions"), api("GET", "/api/tokens")]);
      if (mine !== loads) return;  // a later load is on its way: an older answer must not overwrite it
      $("sessions").replaceChildren(...s.sessions.map((x) => row(
        `${device(x.user_agent)} at ${x.client}, last used ${when(x.last_seen_wall_s)}` +
          (x.current ? " (this browser)" : ""),
        "Sign out", x.current ? null : () => api("DELETE", `/api/sessions/${encodeURIComponent(x.id)}`))));
      $("tokens").replaceChildren(...t.tokens.map((x) => row(
        `“${x.name}”` + (x.created_wall_s ? `, made ${when(x.created_wall_s)}` : ""),
        "Revoke", () => api("DELETE", `/api/tokens/${encodeURIComponent(x.name)}`))));
      if (!t.tokens.length) $("tokens").replaceChildren(row("None. Make one on the warmer: stonewarmer token"));
    } catch (e) {
      $("access-msg").textContent = e.message;
    }
  }

  /* Wire the section: `callApi(method, path)` is the page's own (it sends the CSRF token). */
  function wire(callApi, clock) {
    api = callApi; hhmm = clock;
    $("access").addEventListener("toggle", () => { if ($("access").open) load(); });
  }

  /* Show the section to a signed-in owner only; a reopened section loads afresh. */
  function show(signedIn) {
    $("access").hidden = !signedIn;
    if (!signedIn) $("access").open = false;
  }

  return { wire, show };
})();
