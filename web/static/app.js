/* stonewarmer dashboard: live status (Server-Sent Events, polling as fallback), setpoint, sign-in,
   chart and events; the practice day (off / on, presets, auto-off, schedule) is day.js, the settings
   sheet settings.js. Temperatures arrive in degC; the page shows degC or degF (remembered per browser). */
"use strict";

(function () {
  const STALE_MS = 10000;        // no word from the warmer for this long: "connection lost"
  const TICK_LATE_S = 5;         // the warmer answers but its control loop has not ticked for this long
  const POLL_MS = 2000;          // the fallback when no live stream can be had
  const STREAM_RETRY_MS = 30000; // try the live stream again after falling back to polling
  const SEND_DELAY_MS = 700;     // a few taps on + / - become one change
  const OFFLINE_ALARM_MS = 5000; // "connection lost" shown this long (so 15 s without a word): the alarm sounds
  const CLOCK_STEP_S = 5;        // a status this much older than the chart's last point: the clock stepped back
  const EVENTS_SHOWN = 15;
  const PAGE_START = Date.now();
  const W = window.StoneWords;   // every word about the state: web/static/words.js

  const $ = (id) => document.getElementById(id);
  const state = {
    status: null, lastHeardAt: 0, session: null, unit: localStorage.getItem("stonewarmer.unit") || "C",
    sound: localStorage.getItem("stonewarmer.sound") !== "off", prevMode: null, silencedKey: null,
    lostSince: null, beforeOutage: null, missed: null, events: [], eventsNote: "Nothing yet.", spNote: null,
    pendingSpC: null, sendTimer: null, stream: null, pollTimer: null, hours: 1,
    series: { t: [], temp: [], sp: [], duty: [] }, drawQueued: false,
  };

  // -- units and words ----------------------------------------------------------------------
  const toUnit = (c) => (state.unit === "F" ? c * 9 / 5 + 32 : c);
  const fromUnit = (v) => (state.unit === "F" ? (v - 32) * 5 / 9 : v);
  const num = (c, digits = 1) => (c === null || c === undefined ? "--" : toUnit(c).toFixed(digits));
  const fmt = (c, digits = 1) => (c === null || c === undefined ? "--" : toUnit(c).toFixed(digits) + " °" + state.unit);
  const spDigits = () => (state.unit === "F" ? 0 : 1);  // setpoints move in 1 °F or 0.5 °C steps
  const fmtSp = (c) => fmt(c, spDigits());
  const hhmm = (t) => { const d = new Date(t * 1000); return String(d.getHours()).padStart(2, "0") + ":" + String(d.getMinutes()).padStart(2, "0"); };
  const words = (text) => W.temperatures(text, fmt);

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

  // Signing in or out changes what the stream carries (events only for those who may read them).
  function restartStream() {
    if (state.stream) state.stream.close();
    state.stream = null;
    stopPolling();
    connectStream();
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
      if (s.mode === "fault") state.silencedKey = null;  // a new fault sounds even if an earlier one was silenced
      if (s.mode === "ready" && state.sound) window.StoneAlerts.chime();
    }
    state.prevMode = s.mode;
    if (state.pendingSpC !== null && state.sendTimer === null && Math.abs(s.setpoint_c - state.pendingSpC) < 0.01) {
      state.pendingSpC = null;
      state.spNote = null;
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

  // A lost connection starts the outage clock; its end looks for faults that came (and maybe went) meanwhile.
  function trackOutage(lost) {
    if (lost && state.lostSince === null) {
      state.lostSince = Date.now();
      state.beforeOutage = state.status;
    } else if (!lost && state.lostSince !== null) {
      state.lostSince = null;
      if (state.beforeOutage && state.status) reconnected(state.beforeOutage, state.status);
    }
  }

  /* The status counts the faults of each kind since the warmer started (it is open to every viewer;
     the events, with their times, may need a sign-in). A count that grew is a fault in the outage. */
  async function reconnected(before, now) {
    const was = before.faults_total || {}, is = now.faults_total || {};
    const kinds = Object.keys(is).filter((k) => is[k] > (was[k] || 0));
    await loadEvents();
    const event = state.events.find((e) => e.kind === "fault" && e.wall_time_s > before.wall_time_s);
    if (!kinds.length && !event) return;
    if (state.status.mode === "fault") state.silencedKey = null;                // still latched: its alarm sounds
    else state.missed = event || { kind: "fault", fault: kinds[0], wall_time_s: null };  // came and went: say so
    render();
  }

  function render() {
    const s = state.status, l = live(), hero = $("hero");
    const lost = !l.ok && !state.needSignIn && (state.lastHeardAt !== 0 || Date.now() - PAGE_START > STALE_MS);
    trackOutage(lost);
    $("offline").hidden = !lost;
    $("offline-why").textContent = l.why || "";
    hero.classList.toggle("stale", !l.ok);
    if (!s) {
      if (state.needSignIn) $("temp-note").textContent = l.why;
      renderAlarm(null, false, lost);
      return;
    }
    hero.dataset.mode = s.mode;
    const m = W.mode(s.mode), badge = m.badge;
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
    $("badge-word").textContent = l.ok ? badge : "NOT LIVE";
    $("badge-icon").textContent = l.ok ? m.icon : "";
    $("reason").textContent = l.ok ? words(m.reason(s, fmt)) : `Last known state: ${badge}, at ${hhmm(s.wall_time_s)}.`;
    $("fault-details").hidden = !(l.ok && s.mode === "fault");
    $("fault-tech").textContent = s.mode === "fault" ? `${words(s.fault_message)} (fault code: ${s.fault})` : "";
    $("eta").textContent = l.ok && s.mode !== "ready" && s.ready_in_s !== null && s.ready_in_s > 0
      ? `Ready in ${duration(s.ready_in_s)} (around ${hhmm(Date.now() / 1000 + s.ready_in_s)})` : "";
    $("bath").textContent = l.ok && s.bath ? bathWords(s.bath) : "";
    document.title = (l.ok ? `${s.mode === "fault" ? "FAULT" : fmt(s.temperature_c)} · ${badge}` : "Not live") + " · Stone warmer";
    renderAlarm(s, l.ok, lost);
    renderSetpoint();
    window.StoneDay.render(s, l.ok, state.events, canChange(), window.StoneSettings.current());
    window.StoneSettings.renderCalibration();
    queueDraw();
  }

  /* What the alarm is about now, most urgent first: a fault, a fault missed during an outage, a lost
     connection that has lasted past the grace period. `key` names it, so that silencing one alarm does not
     silence the next. */
  function currentAlarm(s, ok, lost) {
    if (ok && s.mode === "fault") {
      const f = W.fault(s.fault);
      return { key: `fault:${s.fault}`, banner: "alarm", headline: f.headline, text: f.todo };
    }
    if (ok && state.missed) {
      const e = state.missed, f = W.fault(e.fault);
      const when = e.wall_time_s === null ? "Meanwhile" : `At ${hhmm(e.wall_time_s)}`;
      return { key: `missed:${e.wall_time_s}:${e.fault}`, banner: "alarm",
        headline: "A fault happened while the connection was lost",
        text: `${when}: ${f.what}. It has cleared since; check the bath before using the stones.` };
    }
    if (lost && state.lostSince !== null && Date.now() - state.lostSince >= OFFLINE_ALARM_MS) {
      return { key: `offline:${state.lostSince}`, banner: "offline" };
    }
    return null;
  }

  // What the warmer learned about its bath, in the page's unit; a heater too weak for it says so first.
  function bathWords(b) {
    if (b.too_weak_kind === "limit") {
      return `This heater can hold at most about ${fmt(b.max_water_c, 0)} in this bath: close the lid, ` +
        "use less water or a stronger heater.";
    }
    if (b.too_weak_kind === "lid") return "The heater works but cannot warm the bath to the set temperature now: is the lid off?";
    if (!b.learned) return "Still learning this bath (it learns on the first warm-up).";
    const rate = (state.unit === "F" ? b.heat_rate_c_per_min * 9 / 5 : b.heat_rate_c_per_min).toFixed(1);
    const head = b.litres ? `${(b.power_w / 1000).toFixed(1)} kW into about ${b.litres} L` : "The heater";
    return `${head}: ${rate} °${state.unit} a minute at full power; the probe lags about ${b.probe_delay_s} s.`;
  }

  function renderAlarm(s, ok, lost) {
    const alarm = currentAlarm(s, ok, lost);
    const sounding = alarm !== null && alarm.key !== state.silencedKey;
    $("alarm").hidden = !(alarm && alarm.banner === "alarm");
    $("alarm-headline").textContent = alarm && alarm.headline ? alarm.headline : "";
    $("alarm-text").textContent = alarm && alarm.text ? alarm.text : "";
    $("silence").hidden = !sounding;
    $("silence-offline").hidden = !(sounding && alarm.banner === "offline");
    document.body.classList.toggle("alarming", sounding);
    // Browsers keep a page silent until it is touched: say so while an alarm cannot sound.
    document.body.classList.toggle("needs-tap", sounding && state.sound && !window.StoneAlerts.unlocked());
    if (sounding && state.sound) window.StoneAlerts.startAlarm();
    else window.StoneAlerts.stopAlarm();
    $("ack").hidden = !(ok && s.mode === "fault" && canChange());
  }

  function silence() {
    const alarm = currentAlarm(state.status, live().ok, !$("offline").hidden);
    if (alarm) state.silencedKey = alarm.key;
    if (alarm && alarm.key.startsWith("missed:")) state.missed = null;  // read: the notice goes
    render();
  }

  // -- setpoint ---------------------------------------------------------------------------------
  function canChange() {
    return !!(state.session && state.session.signed_in);
  }

  function renderSetpoint() {
    const s = state.status;
    if (!s) return;
    const shown = state.pendingSpC !== null ? state.pendingSpC : s.setpoint_c;
    $("sp").textContent = num(shown, spDigits());
    $("sp-unit").textContent = "°" + state.unit;
    $("sp").parentElement.classList.toggle("pending", state.pendingSpC !== null);
    $("range").textContent = allowed(s);
    $("sp-msg").textContent = state.spNote ? state.spNote() : "";
    const ok = canChange() && live().ok;
    $("minus").disabled = !ok || shown <= s.min_setpoint_c + 1e-6;
    $("plus").disabled = !ok || shown >= s.max_setpoint_c - 1e-6;
  }

  /* The range the + / - buttons can reach, in the page's unit: in degF only whole degrees are reachable. */
  function allowed(s) {
    if (state.unit !== "F") return `Allowed ${fmt(s.min_setpoint_c)} to ${fmt(s.max_setpoint_c)}`;
    const lo = Math.ceil(toUnit(s.min_setpoint_c) - 1e-6), hi = Math.floor(toUnit(s.max_setpoint_c) + 1e-6);
    return `Allowed ${lo} °F to ${hi} °F`;
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
      state.spNote = () => `${allowed(s)}.`;
      renderSetpoint();
      return;
    }
    state.pendingSpC = next;
    state.spNote = () => "Saving…";
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
      state.spNote = () => `Set to ${fmtSp(r.setpoint_c)}.`;
      renderSetpoint();
    } catch (e) {
      state.pendingSpC = null;
      state.spNote = () => "Not changed: " + words(e.message);
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
    window.StoneAccess.show(se.signed_in);
    window.StoneSettings.show(se.signed_in).then(render);  // the day's words need the schedule
    if (!se.password_set) {
      msg.textContent = "Changes are switched off: no password is set yet. To set one, " + se.how_to_set_password + ".";
    } else if (!se.signed_in) {
      msg.textContent = "Sign in to change the temperature or acknowledge a fault.";
    } else {
      msg.textContent = "Signed in.";
    }
    render();
  }

  function signInError(text) {
    $("signin-error").textContent = text;
    $("signin-error").hidden = !text;
  }

  async function signIn(ev) {
    ev.preventDefault();
    signInError("");
    try {
      state.session = await api("POST", "/api/session", { password: $("password").value });
      $("password").value = "";
      renderSession();
      loadHistory(); loadEvents();  // the history and the events are for those signed in (unless opened)
      restartStream();
    } catch (e) {
      const why = words(e.message);
      signInError(e.status === 401 ? "Wrong password. Try again." : why.charAt(0).toUpperCase() + why.slice(1) + ".");
      $("password").select();
      if (e.status === 403) loadSession();
    }
  }

  async function signOut() {
    try { state.session = await api("DELETE", "/api/session"); } catch (e) { /* shown below */ }
    await loadSession();
    loadHistory(); loadEvents();
    restartStream();
  }

  // -- chart ------------------------------------------------------------------------------------
  async function loadHistory() {
    const span = state.hours * 3600;
    try {
      const h = await api("GET", `/api/history?since=-${span}`);
      const sr = h.series;
      state.series = { t: sr.t_s.slice(), temp: sr.temperature_c.slice(), sp: sr.setpoint_c.slice(), duty: sr.duty.slice() };
      state.gapS = h.resolution === "1m" ? 180 : 30;
      $("chart-note").textContent = "";
    } catch (e) {
      state.series = { t: [], temp: [], sp: [], duty: [] };  // from now on, what the page sees live
      $("chart-note").textContent = e.status === 401 ? "Sign in to see the history before this page was opened." : "";
    }
    queueDraw();
  }

  function addPoint(s) {
    const sr = state.series, last = sr.t.length ? sr.t[sr.t.length - 1] : -Infinity;
    if (s.wall_time_s < last - CLOCK_STEP_S) {  // the clock stepped back: the warmer cuts its history there
      state.series = { t: [], temp: [], sp: [], duty: [] };
      loadHistory();
      return;
    }
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
    $("k-temp").style.setProperty("--swatch", modeColor);  // the legend shows the line's own colour
    window.StoneChart.draw($("chart"), { t: sr.t, temp: sr.temp.map(conv), sp: sr.sp.map(conv), duty: sr.duty },
      { since: until - state.hours * 3600, until, gapS: state.gapS || 30, unit: state.unit, tempColor: modeColor });
  }

  // -- events -----------------------------------------------------------------------------------
  async function loadEvents() {
    try {
      const r = await api("GET", `/api/events?limit=${EVENTS_SHOWN}`);
      state.events = r.events.slice();  // newest first
      state.eventsNote = "Nothing yet.";
    } catch (e) {
      if (e.status !== 401) return;  // a passing failure: keep what is shown
      state.events = [];
      state.eventsNote = "Sign in to see the events.";
    }
    renderEvents();
  }

  function addEvent(e) {
    state.events.unshift(e);
    state.events.length = Math.min(state.events.length, EVENTS_SHOWN);
    renderEvents();
  }

  /* Plain words in the list; the warmer's own record (kind, message, who) behind "Details". */
  function renderEvents() {
    const list = $("events"), tech = $("events-tech");
    list.replaceChildren();
    tech.replaceChildren();
    for (const e of state.events) {
      const li = document.createElement("li");
      if (e.kind === "fault") li.className = "fault";
      const time = document.createElement("time");
      time.textContent = hhmm(e.wall_time_s);
      const text = document.createElement("span");
      text.textContent = W.event(e, e.kind === "setpoint" || e.kind === "start" ? fmtSp : fmt);
      li.append(time, text);
      list.append(li);
      const raw = document.createElement("li");
      raw.textContent = `${hhmm(e.wall_time_s)} ${e.kind}: ${e.message}` + (e.fault ? ` [${e.fault}]` : "") +
        ` (source: ${e.source})`;
      tech.append(raw);
    }
    if (!state.events.length) {
      const li = document.createElement("li"); li.className = "empty"; li.textContent = state.eventsNote;
      list.append(li);
    }
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
      renderEvents();
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
    $("silence").addEventListener("click", silence);
    $("silence-offline").addEventListener("click", silence);
    $("minus").addEventListener("click", () => step(-1));
    $("plus").addEventListener("click", () => step(+1));
    $("ack").addEventListener("click", acknowledge);
    $("signin").addEventListener("submit", signIn);
    $("signout").addEventListener("click", signOut);
    window.StoneAccess.wire(api, hhmm);
    const lent = { api, hhmm, num, fmt, fmtSp, words, onStatus, render, loadSession, toUnit, fromUnit,
      unit: () => state.unit, status: () => state.status, refresh: render };
    window.StoneDay.wire(lent);
    window.StoneSettings.wire(lent);
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
