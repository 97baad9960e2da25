/* The practice day on the dashboard: the Off / On switch, one button per preset, when the warmer will
   switch itself off (and the warning 15 min before, with "Keep it on"), when the schedule will start it,
   and why it switched itself off. Times come from the warmer's status in its own wall clock (a simulated
   warmer's runs ahead), so they are compared with the status's `wall_time_s`, never with the phone's; and
   they are shown in the warmer's time zone (the status's `time_zone`, else its `utc_offset_s`), the one
   its schedule's HH:MM are in, never the phone's (docs/configuration.md, [schedule]). */
"use strict";

window.StoneDay = (function () {
  const WARNING_S = 900;  // the warmer warns this long before auto-off (controller/core/planner.py)
  const DAY_KEYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];  // Date.getDay() order
  const $ = (id) => document.getElementById(id);
  let page = null;        // what the page lends: api, num, fmtSp, words, onStatus, render, loadSession, status
  let shownPresets = "";  // the preset buttons drawn, to redraw only when they change
  let busy = false;

  /* Text that only changes when it differs: a live region re-reads whatever is set, even the same words. */
  function put(id, text) {
    if ($(id).textContent !== text) $(id).textContent = text;
  }

  /* The warmer's zone: by name (Intl follows its daylight saving), else null for its offset now. */
  const zones = new Map();
  function zoneFormat(s) {
    const name = s.time_zone || "";
    if (!zones.has(name)) {
      let f = null;
      try {
        if (name) {
          f = new Intl.DateTimeFormat("en-US", { timeZone: name, hourCycle: "h23", year: "numeric", month: "numeric",
                                                 day: "numeric", hour: "numeric", minute: "numeric", second: "numeric" });
        }
      } catch (e) {
        f = null;  // a zone this browser does not know (RangeError): its offset will do
      }
      zones.set(name, f);
    }
    return zones.get(name);
  }

  /* The warmer's local date and time of `wallS`, as the seconds of that local time read as UTC. */
  function localS(s, wallS) {
    const f = zoneFormat(s);
    if (f === null) return wallS + (s.utc_offset_s || 0);
    const p = {};
    for (const x of f.formatToParts(new Date(wallS * 1000))) p[x.type] = Number(x.value);
    return Date.UTC(p.year, p.month - 1, p.day, p.hour % 24, p.minute, p.second) / 1000;
  }

  /* "HH:MM" of `wallS` on the warmer's clock. */
  function clock(s, wallS) {
    const d = new Date(localS(s, wallS) * 1000);
    return String(d.getUTCHours()).padStart(2, "0") + ":" + String(d.getUTCMinutes()).padStart(2, "0");
  }

  /* The wall time (s) of "HH:MM" in the warmer's zone on the day of `wallS`, `days` days later
     (a time the clocks skip is an hour later, as the planner has it). */
  function at(s, wallS, hhmmText, days) {
    const d = new Date(localS(s, wallS) * 1000);
    const [h, m] = hhmmText.split(":").map(Number);
    const target = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + days, h, m) / 1000;
    const guess = target - (localS(s, target) - target);
    return target - (localS(s, guess) - guess);
  }

  function dayPlan(s, settings, wallS, days) {
    if (!settings || !settings.schedule || !settings.schedule.days) return null;
    const d = new Date(localS(s, wallS) * 1000);
    return settings.schedule.days[DAY_KEYS[(d.getUTCDay() + days) % 7]] || null;
  }

  /* The "ready by" a start at `startS` is for: that day's, else the next day's (a start before midnight). */
  function readyByFor(s, settings, startS) {
    for (const days of [0, 1]) {
      const plan = dayPlan(s, settings, startS, days);
      if (plan && plan.ready_by && at(s, startS, plan.ready_by, days) >= startS) {
        return at(s, startS, plan.ready_by, days);
      }
    }
    return null;
  }

  /* Today's "off at" still to come, when the clock can be trusted. */
  function offAtToday(settings, s) {
    const plan = s.clock_synced ? dayPlan(s, settings, s.wall_time_s, 0) : null;
    if (!plan || !plan.off_at) return null;
    const t = at(s, s.wall_time_s, plan.off_at, 0);
    return t > s.wall_time_s ? t : null;
  }

  function scheduled(settings) {
    return !settings || Object.keys((settings.schedule && settings.schedule.days) || {}).length > 0;
  }

  /* The latest automatic switch-off, if it is the reason the warmer is off now. */
  function lastAutoOff(events) {
    const e = events.find((x) => ["auto-off", "off", "on", "auto-on"].includes(x.kind));
    return e && e.kind === "auto-off" ? e : null;
  }

  function why(s, e) {
    const by = e.source === "auto-off" ? "by auto-off (no one had touched it)" : "by the schedule";
    return `Switched itself off ${by} at ${clock(s, e.wall_time_s)}.`;
  }

  /* The line under the state: what the warmer will do by itself next, or why it is off. */
  function note(s, settings, events) {
    const lines = [];
    if (s.switched_off) {
      const e = lastAutoOff(events);
      if (e) lines.push(why(s, e));
    } else {
      const offs = [s.auto_off_at, offAtToday(settings, s)].filter((t) => t !== null && t !== undefined);
      if (offs.length) lines.push(`Switches off at ${clock(s, Math.min(...offs))}.`);
    }
    if (s.next_start !== null && s.next_start !== undefined) {
      const ready = readyByFor(s, settings, s.next_start);
      lines.push(`Starts at ${clock(s, s.next_start)}` + (ready !== null ? ` to be ready by ${clock(s, ready)}.` : "."));
    } else if (!s.clock_synced && scheduled(settings)) {
      lines.push("The clock is not set: the schedule waits.");
    }
    return lines.join("\n");
  }

  function renderPresets(s, enabled) {
    const list = s.presets || [];
    const key = JSON.stringify(list);
    if (key !== shownPresets) {
      shownPresets = key;
      $("presets").replaceChildren(...list.map((p) => {
        const b = document.createElement("button");
        b.type = "button";
        b.dataset.preset = p.name;
        b.addEventListener("click", () => applyPreset(p.name));
        return b;
      }));
    }
    for (const b of $("presets").children) {
      const p = list.find((x) => x.name === b.dataset.preset);
      b.textContent = `${p.name} ${page.num(p.setpoint_c, 1).replace(/\.0$/, "")}`;  // "Body 52"
      b.setAttribute("aria-label", `${p.name}: set ${page.fmtSp(p.setpoint_c)}`);
      b.setAttribute("aria-pressed", String(Math.abs(p.setpoint_c - s.setpoint_c) < 0.01));
      b.disabled = !enabled;
    }
    $("presets").hidden = list.length === 0;
  }

  /* Everything the day shows, from one status; `ok`: the status is live; `events`: newest first. */
  function render(s, ok, events, canChange, settings) {
    const enabled = ok && canChange && !busy;
    const power = $("power");
    put("power", s.switched_off ? "Switch on" : "Switch off");
    power.classList.toggle("off", !!s.switched_off);
    power.disabled = !enabled;
    renderPresets(s, enabled);
    put("day-note", ok ? note(s, settings, events) : "");
    const left = s.auto_off_at === null || s.auto_off_at === undefined ? null : s.auto_off_at - s.wall_time_s;
    const warn = ok && !s.switched_off && left !== null && left <= WARNING_S;
    $("auto-off-warning").hidden = !warn;
    if (warn) {
      put("auto-off-headline", `Switches itself off at ${clock(s, s.auto_off_at)}`);
      put("auto-off-text", "No one has touched the warmer for a long time." + (canChange ? "" : " Sign in to keep it on."));
      $("keep-on").hidden = !canChange;
      $("keep-on").disabled = busy;
    }
  }

  /* One command; its answer's status shown at once, a refusal in words under the buttons. */
  async function command(path, body, done) {
    busy = true;
    $("day-msg").textContent = "";
    try {
      const r = await page.api("POST", path, body);
      page.onStatus(r.status);
      $("day-msg").textContent = done(r);
    } catch (e) {
      $("day-msg").textContent = "Not changed: " + page.words(e.message).replace(/\.$/, "") + ".";
      if (e.status === 401 || e.status === 403) page.loadSession();
    } finally {
      busy = false;
      page.render();
    }
  }

  function switchPower() {
    const off = !page.status().switched_off;
    command("/api/mode", { mode: off ? "off" : "heat" }, (r) => (r.mode === "off"
      ? "Switched off: the heater stays off until switched on." : "Switched on."));
  }

  function applyPreset(name) {
    command("/api/preset", { name }, (r) => `${name}: set to ${page.fmtSp(r.setpoint_c)}.`);
  }

  function keepOn() {
    command("/api/auto-off/extend", {}, (r) => (r.auto_off_at === null ? "Kept on."
      : `Kept on: switches off at ${clock(r.status || page.status(), r.auto_off_at)}.`));
  }

  function wire(lent) {
    page = lent;
    $("power").addEventListener("click", switchPower);
    $("keep-on").addEventListener("click", keepOn);
  }

  return { wire, render };
})();
