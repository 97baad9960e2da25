/* stonewarmer dashboard: live status (Server-Sent Events, polling as fallback), setpoint, sign-in,
   chart and events. Temperatures arrive in degC; the page shows degC or degF (remembered per browser). */
"use strict";

(function () {
  const STALE_MS = 10000;        // no word from the warmer for this long: "connection lost"
  const TICK_LATE_S = 5;         // the warmer answers but its control loop has not ticked for this long
  const POLL_MS = 2000;          // the fallback when no live stream can be had
  const STREAM_RETRY_MS = 30000; // try the live stream again after falling back to polling
  const SEND_DELAY_MS = 700;     // a few taps on + / - become one change
  const EVENTS_SHOWN = 15;
  const PAGE_START = Date.now();

  const MODES = {
    starting: ["Starting", () => "Waiting for the first temperature reading. The heater stays off until then."],
    warming: ["Warming", (s) => `Heating the water to ${fmt(s.setpoint_c)}. The stones are not ready yet.`],
    holding: ["Almost ready", () => "At temperature; giving the stones a few minutes to warm through."],
    ready: ["READY", () => "The stones are at temperature and ready to use."],
    cooling: ["Cooling", () => "The water is hotter than set, so the heater is off. " +
      "Check a stone on your wrist before use."],
    fault: ["FAULT", (s) => s.fault_message || "The heater is off because of a fault."],
    off: ["Off", () => "Switched off: the heater stays off. The temperature is still watched."],
  };

  const $ = (id) => document.getElementById(id);
  const state = {
    status: null, lastHeardAt: 0, session: null, unit: localStorage.getItem("stonewarmer.unit") || "C",
    sound: localStorage.getItem("stonewarmer.sound") !== "off", prevMode: null, silenced: false,
    pendingSpC: null, sendTimer: null, stream: null, pollTimer: null, hours: 1,
    series: { t: [], temp: [], sp: [], duty: [] }, drawQueued: false,
  };

  // -- units and words ----------------------------------------------------------------------
  const toUnit = (c) => (state.unit === "F" ? c * 9 / 5 + 32 : c);
  const fromUnit = (v) => (state.unit === "F" ? (v - 32) * 5 / 9 : v);
  const num = (c, digits = 1) => (c === null || c === undefined ? "--" : toUnit(c).toFixed(digits));
  const fmt = (c, digits = 1) => (c === null || c === undefined ? "--" : toUnit(c).toFixed(digits) + " °" + state.unit);
  const hhmm = (t) => { const d = new Date(t * 1000); return String(d.getHours()).padStart(2, "0") + ":" + String(d.getMinutes()).padStart(2, "0"); };
  const words = (text) => String(text || "").replace(/degC/g, "°C");

  function duration(s) {
    if (s < 90) return "about a minute";
    if (s < 3600) return `about ${Math.round(s / 60)} min`;
    return `about ${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
  }

  // -- talking to the warmer -----------------------------------------------------------------
  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (method !== "GET") {
      headers["X-CSRF-Token"] = state.session ? state.session.csrf_token : "";
      if (body !== undefined) headers["Content-Type"] = "application/json";
    }
    const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin", cache: "no-store", signal: AbortSignal.timeout ? AbortSignal.timeout(5000) : undefined });
    let data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    if (!res.ok) {
      const err = new Error((data && data.error) || `the warmer answered ${res.status}`);
      err.status = res.status; err.data = data;
      throw err;
    }
    return data;
  }

  function heard() {
    state.lastHeardAt = Date.now();
    state.dropped = false;
  }

  function connectStream() {
    if (!window.EventSource) { startPolling(); return; }
    const es = new EventSource("/api/stream");
    state.stream = es;
    es.addEventListener("status", (e) => { stopPolling(); heard(); onStatus(JSON.parse(e.data)); });
    es.addEventListener("event", (e) => { heard(); addEvent(JSON.parse(e.data)); });
    es.addEventListener("ping", (e) => { stopPolling(); heard(); onPing(JSON.parse(e.data)); });
    es.onerror = () => {
      state.dropped = true;  // shown at once, not only when the watchdog notices the silence
      render();
      if (es.readyState === EventSource.CLOSED) {   // refused (too many streams, signed out): poll
        state.stream = null;
        startPolling();
        setTimeout(connectStream, STREAM_RETRY_MS);
      }                                             // otherwise the browser reconnects by itself
    };
  }

  function startPolling() {
    if (state.pollTimer) return;
    const poll = async () => {
      try {
        const s = await api("GET", "/api/status");
        state.needSignIn = false; heard(); onStatus(s);
      } catch (e) {
        state.needSignIn = e.status === 401;  // [web] open_viewing = false; other failures: the watchdog
        render();
      }
    };
    poll();
    state.pollTimer = setInterval(poll, POLL_MS);
  }

  function stopPolling() {
    if (state.pollTimer) clearInterval(state.pollTimer);
    state.pollTimer = null;
  }

  // -- showing the status ---------------------------------------------------------------------
  function onPing(p) {
    if (state.status) state.status.tick_age_s = p.tick_age_s;
    render();
  }

  function onStatus(s) {
    const prev = state.prevMode;
    state.status = s;
    if (prev !== null && prev !== s.mode) {
      if (s.mode === "fault") { state.silenced = false; }
      if (s.mode === "ready" && state.sound) window.StoneAlerts.chime();
    }
    state.prevMode = s.mode;
    if (state.pendingSpC !== null && state.sendTimer === null && Math.abs(s.setpoint_c - state.pendingSpC) < 0.01) {
      state.pendingSpC = null;
      $("sp-msg").textContent = "";
    }
    addPoint(s);
    render();
  }

  function live() {
    const s = state.status;
    if (state.needSignIn) return { ok: false, why: "Sign in to see the warmer." };
    if (!s) return { ok: false, why: "Waiting for the warmer…" };
    if (state.dropped && !state.pollTimer) return { ok: false, why: "The connection to the warmer dropped." };
    if (Date.now() - state.lastHeardAt > STALE_MS) return { ok: false, why: "The warmer is not answering." };
    if (s.tick_age_s > TICK_LATE_S) return { ok: false, why: "The warmer's controller is not responding." };
    return { ok: true };
  }

  function render() {
    const s = state.status, l = live(), hero = $("hero");
    const lost = !l.ok && !state.needSignIn && (state.lastHeardAt !== 0 || Date.now() - PAGE_START > STALE_MS);
    $("offline").hidden = !lost;
    $("offline-why").textContent = l.why || "";
    hero.classList.toggle("stale", !l.ok);
    if (!s) {
      if (state.needSignIn) $("temp-note").textContent = l.why;
      return;
    }
    hero.dataset.mode = s.mode;
    const [badge, reason] = MODES[s.mode] || [s.mode, () => ""];
    if (l.ok && s.temperature_c !== null) {
      $("temp").textContent = num(s.temperature_c);
      $("temp-unit").textContent = "°" + state.unit;
      $("temp-note").textContent = s.reading_age_s > 5 ? `reading ${Math.round(s.reading_age_s)} s old` : "";
    } else {
      // Never show a stale number as current.
      $("temp").textContent = "--";
      $("temp-unit").textContent = "";
      $("temp-note").textContent = !l.ok
        ? (s.temperature_c !== null ? `last seen ${fmt(s.temperature_c)} at ${hhmm(s.wall_time_s)}` : l.why)
        : "No temperature reading from the probe.";
    }
    $("badge").textContent = l.ok ? badge : "NOT LIVE";
    $("reason").textContent = l.ok ? words(reason(s)) : `Last known state: ${badge}, at ${hhmm(s.wall_time_s)}.`;
    $("eta").textContent = l.ok && s.mode !== "ready" && s.ready_in_s !== null && s.ready_in_s > 0
      ? `Ready in ${duration(s.ready_in_s)} (around ${hhmm(Date.now() / 1000 + s.ready_in_s)})` : "";
    // What the warmer learned about its bath, in words; a heater too weak for it says so first.
    $("bath").textContent = l.ok && s.bath ? (s.bath.too_weak || s.bath.summary || "") : "";
    document.title = (l.ok ? `${s.mode === "fault" ? "FAULT" : fmt(s.temperature_c)} · ${badge}` : "Not live") + " · Stone warmer";
    renderAlarm(s, l.ok);
    renderSetpoint();
    queueDraw();
  }

  function renderAlarm(s, ok) {
    const fault = ok && s.mode === "fault";
    $("alarm").hidden = !fault;
    $("alarm-text").textContent = fault ? `Do not use the stones until it is fixed (${s.fault}).` : "";
    document.body.classList.toggle("alarming", fault && !state.silenced);
    $("silence").hidden = state.silenced;
    if (fault && !state.silenced && state.sound) window.StoneAlerts.startAlarm();
    else window.StoneAlerts.stopAlarm();
    $("ack").hidden = !(fault && canChange());
  }

  // -- setpoint ---------------------------------------------------------------------------------
  function canChange() {
    return !!(state.session && state.session.signed_in);
  }

  function renderSetpoint() {
    const s = state.status;
    if (!s) return;
    const shown = state.pendingSpC !== null ? state.pendingSpC : s.setpoint_c;
    $("sp").textContent = num(shown, state.unit === "F" ? 0 : 1);
    $("sp-unit").textContent = "°" + state.unit;
    $("sp").parentElement.classList.toggle("pending", state.pendingSpC !== null);
    $("range").textContent = `Allowed ${fmt(s.min_setpoint_c, 1)} to ${fmt(s.max_setpoint_c, 1)}`;
    const ok = canChange() && live().ok;
    $("minus").disabled = !ok || shown <= s.min_setpoint_c + 1e-6;
    $("plus").disabled = !ok || shown >= s.max_setpoint_c - 1e-6;
  }

  function step(direction) {
    const s = state.status;
    const current = state.pendingSpC !== null ? state.pendingSpC : s.setpoint_c;
    let next;
    if (state.unit === "F") {
      next = fromUnit(Math.round(toUnit(current)) + direction);          // 1 °F steps
    } else {
      next = (Math.round(current * 2) + direction) / 2;                   // 0.5 °C steps
    }
    next = Math.round(next * 1000) / 1000;
    if (next > s.max_setpoint_c + 1e-6 || next < s.min_setpoint_c - 1e-6) {
      $("sp-msg").textContent = `Allowed ${fmt(s.min_setpoint_c)} to ${fmt(s.max_setpoint_c)}.`;
      return;
    }
    state.pendingSpC = next;
    $("sp-msg").textContent = "Saving…";
    clearTimeout(state.sendTimer);
    state.sendTimer = setTimeout(sendSetpoint, SEND_DELAY_MS);
    renderSetpoint();
  }

  async function sendSetpoint() {
    state.sendTimer = null;
    const value = state.pendingSpC;
    try {
      const r = await api("POST", "/api/setpoint", { setpoint_c: value });
      onStatus(r.status);
      $("sp-msg").textContent = `Set to ${fmt(r.setpoint_c)}.`;
    } catch (e) {
      state.pendingSpC = null;
      $("sp-msg").textContent = "Not changed: " + words(e.message);
      if (e.status === 401 || e.status === 403) loadSession();
      renderSetpoint();
    }
  }

  async function acknowledge() {
    $("ack-msg").textContent = "";
    try {
      const r = await api("POST", "/api/fault/ack");
      onStatus(r.status);
    } catch (e) {
      $("ack-msg").textContent = words(e.message);
    }
  }

  // -- sign-in ----------------------------------------------------------------------------------
  async function loadSession() {
    try { state.session = await api("GET", "/api/session"); } catch (e) { return; }
    renderSession();
  }

  function renderSession() {
    const se = state.session;
    const msg = $("auth-msg");
    $("signin").hidden = !(se.password_set && !se.signed_in);
    $("signout").hidden = !se.signed_in;
    if (!se.password_set) {
      msg.textContent = "Changes are switched off: no password is set yet. To set one, " + se.how_to_set_password + ".";
    } else if (!se.signed_in) {
      msg.textContent = "Sign in to change the temperature or acknowledge a fault.";
    } else {
      msg.textContent = "Signed in.";
    }
    render();
  }

  async function signIn(ev) {
    ev.preventDefault();
    try {
      state.session = await api("POST", "/api/session", { password: $("password").value });
      $("password").value = "";
      renderSession();
      if (state.needSignIn) { loadHistory(); loadEvents(); }  // refused before signing in
      if (!state.stream && !state.pollTimer) connectStream();
    } catch (e) {
      $("auth-msg").textContent = words(e.message);
      if (e.status === 403) loadSession();
    }
  }

  async function signOut() {
    try { state.session = await api("DELETE", "/api/session"); } catch (e) { /* shown below */ }
    loadSession();
  }

  // -- chart ------------------------------------------------------------------------------------
  async function loadHistory() {
    const span = state.hours * 3600;
    try {
      const h = await api("GET", `/api/history?since=-${span}`);
      const sr = h.series;
      state.series = { t: sr.t_s.slice(), temp: sr.temperature_c.slice(), sp: sr.setpoint_c.slice(), duty: sr.duty.slice() };
      state.gapS = h.resolution === "1m" ? 180 : 30;
    } catch (e) {
      state.series = { t: [], temp: [], sp: [], duty: [] };
    }
    queueDraw();
  }

  function addPoint(s) {
    const sr = state.series, last = sr.t.length ? sr.t[sr.t.length - 1] : -Infinity;
    if (s.wall_time_s <= last) return;
    sr.t.push(s.wall_time_s); sr.temp.push(s.temperature_c); sr.sp.push(s.setpoint_c); sr.duty.push(s.duty);
    const oldest = s.wall_time_s - state.hours * 3600;
    let drop = 0;
    while (drop < sr.t.length && sr.t[drop] < oldest) drop++;
    if (drop) for (const k of ["t", "temp", "sp", "duty"]) sr[k].splice(0, drop);
  }

  function queueDraw() {
    if (state.drawQueued) return;
    state.drawQueued = true;
    setTimeout(() => requestAnimationFrame(() => { state.drawQueued = false; drawChart(); }), 500);
  }

  function drawChart() {
    const sr = state.series, s = state.status;
    const until = s ? s.wall_time_s : Date.now() / 1000;
    const conv = (v) => (v === null || v === undefined ? null : toUnit(v));
    const modeColor = getComputedStyle($("hero")).getPropertyValue("--mode-color").trim();
    window.StoneChart.draw($("chart"), { t: sr.t, temp: sr.temp.map(conv), sp: sr.sp.map(conv), duty: sr.duty },
      { since: until - state.hours * 3600, until, gapS: state.gapS || 30, unit: state.unit, tempColor: modeColor });
  }

  // -- events -----------------------------------------------------------------------------------
  async function loadEvents() {
    try {
      const r = await api("GET", `/api/events?limit=${EVENTS_SHOWN}`);
      $("events").replaceChildren();
      r.events.slice().reverse().forEach(addEvent);  // oldest first: each goes on top
      if (!r.events.length) {
        const li = document.createElement("li"); li.className = "empty"; li.textContent = "Nothing yet.";
        $("events").append(li);
      }
    } catch (e) { /* viewing may need a sign-in */ }
  }

  function addEvent(e) {
    const list = $("events");
    const empty = list.querySelector(".empty");
    if (empty) empty.remove();
    const li = document.createElement("li");
    if (e.kind === "fault") li.className = "fault";
    const time = document.createElement("time");
    time.textContent = hhmm(e.wall_time_s);
    const text = document.createElement("span");
    text.textContent = words(e.message) + (e.source && e.source !== "controller" ? ` (${e.source})` : "");
    li.append(time, text);
    list.prepend(li);
    while (list.children.length > EVENTS_SHOWN) list.lastChild.remove();
  }

  // -- controls ---------------------------------------------------------------------------------
  function applyTheme() {
    const t = localStorage.getItem("stonewarmer.theme");
    if (t) document.documentElement.dataset.theme = t; else delete document.documentElement.dataset.theme;
  }

  function wire() {
    $("unit").textContent = "°" + state.unit;
    $("unit").addEventListener("click", () => {
      state.unit = state.unit === "C" ? "F" : "C";
      localStorage.setItem("stonewarmer.unit", state.unit);
      $("unit").textContent = "°" + state.unit;
      render();
    });
    $("theme").addEventListener("click", () => {
      const dark = matchMedia("(prefers-color-scheme: dark)").matches;
      const now = document.documentElement.dataset.theme || (dark ? "dark" : "light");
      localStorage.setItem("stonewarmer.theme", now === "dark" ? "light" : "dark");
      applyTheme(); queueDraw();
    });
    $("sound").setAttribute("aria-pressed", String(state.sound));
    $("sound").addEventListener("click", () => {
      state.sound = !state.sound;
      localStorage.setItem("stonewarmer.sound", state.sound ? "on" : "off");
      $("sound").setAttribute("aria-pressed", String(state.sound));
      if (state.sound) window.StoneAlerts.chime();
      render();
    });
    $("silence").addEventListener("click", () => { state.silenced = true; render(); });
    $("minus").addEventListener("click", () => step(-1));
    $("plus").addEventListener("click", () => step(+1));
    $("ack").addEventListener("click", acknowledge);
    $("signin").addEventListener("submit", signIn);
    $("signout").addEventListener("click", signOut);
    document.querySelectorAll(".tabs button").forEach((b) => b.addEventListener("click", () => {
      state.hours = Number(b.dataset.hours);
      document.querySelectorAll(".tabs button").forEach((o) => o.setAttribute("aria-pressed", String(o === b)));
      loadHistory();
    }));
    window.addEventListener("resize", queueDraw);
    setInterval(render, 1000);  // the "connection lost" watchdog
  }

  applyTheme();
  wire();
  loadSession().then(() => { loadHistory(); loadEvents(); connectStream(); });
})();
