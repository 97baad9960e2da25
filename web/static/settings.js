/* The settings sheet: the ready-by schedule (per weekday ready by / preset / off at), auto-off hours,
   the presets, the ntfy address, the guided probe check and export / import of all of it as one JSON
   file (GET/PUT /api/settings, POST /api/probe/calibrate, GET /api/settings/export, POST
   /api/settings/import). The warmer validates the whole document; a refusal is shown in words and
   nothing is changed. Temperatures are kept in degC and shown in the page's unit. */
"use strict";

window.StoneSettings = (function () {
  const WEEKDAYS = [["mon", "Monday"], ["tue", "Tuesday"], ["wed", "Wednesday"], ["thu", "Thursday"],
    ["fri", "Friday"], ["sat", "Saturday"], ["sun", "Sunday"]];
  const $ = (id) => document.getElementById(id);
  let page = null;      // what the page lends: api, fmt, toUnit, fromUnit, unit, words, onStatus, status
  let current = null;   // the settings document as the warmer last answered it

  function say(id, text) { if ($(id).textContent !== text) $(id).textContent = text; }
  const refused = (e) => page.words(e.message).replace(/\.$/, "") + ".";  // the warmer's reason, as one sentence

  // -- the form from a document, and a document from the form ----------------------------------
  function input(type, id, label, value) {
    const wrap = document.createElement("label");
    wrap.className = "field";
    wrap.htmlFor = id;
    const caption = document.createElement("span");
    caption.textContent = label;
    const el = document.createElement(type === "select" ? "select" : "input");
    el.id = id;
    if (type !== "select") { el.type = type; el.value = value || ""; }
    wrap.append(caption, el);
    return wrap;
  }

  function presetNames() {
    return [...$("preset-rows").querySelectorAll("input[data-name]")].map((i) => i.value.trim()).filter(Boolean);
  }

  /* Each day's preset menu offers the presets as the form has them now ("" = the set temperature then). */
  function fillPresetMenus() {
    const names = presetNames();
    for (const [key] of WEEKDAYS) {
      const select = $(`preset-${key}`), chosen = select.value || select.dataset.chosen || "";
      select.replaceChildren(...["", ...names].map((name) => {
        const o = document.createElement("option");
        o.value = name; o.textContent = name || "as set";
        return o;
      }));
      if (chosen && !names.includes(chosen)) select.append(new Option(chosen, chosen));  // the warmer says why
      select.value = chosen;
    }
  }

  function fillDays(days) {
    $("days").replaceChildren(...WEEKDAYS.map(([key, name]) => {
      const plan = days[key] || {};
      const box = document.createElement("div");
      box.className = "day-row";
      const title = document.createElement("span");
      title.className = "day-name";
      title.textContent = name;
      const preset = input("select", `preset-${key}`, "Preset");
      preset.querySelector("select").dataset.chosen = plan.preset || "";
      box.append(title, input("time", `ready-${key}`, "Ready by", plan.ready_by),
        preset, input("time", `off-${key}`, "Off at", plan.off_at));
      return box;
    }));
  }

  function presetRow(p) {
    const row = document.createElement("div");
    row.className = "preset-row";
    const n = $("preset-rows").children.length + 1;
    const name = document.createElement("input");
    name.type = "text"; name.value = p.name; name.dataset.name = ""; name.setAttribute("aria-label", `Preset ${n} name`);
    name.maxLength = 20;
    name.addEventListener("input", fillPresetMenus);
    const celsius = document.createElement("input");
    celsius.type = "number"; celsius.inputMode = "decimal"; celsius.step = "0.5";
    celsius.setAttribute("aria-label", `Preset ${n} temperature in °${page.unit()}`);
    if (p.setpoint_c !== null) {
      celsius.value = shown(p.setpoint_c);
      celsius.dataset.c = String(p.setpoint_c);  // unchanged in °F: sent back exactly as it came
    }
    const unit = document.createElement("span");
    unit.className = "unit"; unit.textContent = `°${page.unit()}`;
    const remove = document.createElement("button");
    remove.type = "button"; remove.textContent = "Remove"; remove.setAttribute("aria-label", `Remove preset ${n}`);
    remove.addEventListener("click", () => { row.remove(); fillPresetMenus(); });
    row.append(name, celsius, unit, remove);
    return row;
  }

  const shown = (c) => String(Math.round(page.toUnit(c) * 10) / 10);

  function fill(doc) {
    current = doc;
    const s = page.status();
    say("preset-range", s ? `Each between ${page.fmt(s.min_setpoint_c)} and ${page.fmt(s.max_setpoint_c)}.` : "");
    $("preset-rows").replaceChildren();
    for (const p of doc.presets) $("preset-rows").append(presetRow(p));
    fillDays(doc.schedule.days || {});
    fillPresetMenus();
    $("auto-off-h").value = doc.schedule.auto_off_h;
    $("ntfy-url").value = (doc.notify && doc.notify.ntfy_url) || "";
    $("thermometer-unit").textContent = `°${page.unit()}`;
    renderCalibration();
  }

  function number(text) {
    return text.trim() === "" ? null : Number(text.replace(",", "."));  // a phone may type a decimal comma
  }

  function fromForm() {
    const days = {};
    for (const [key] of WEEKDAYS) {
      const plan = {}, ready = $(`ready-${key}`).value, preset = $(`preset-${key}`).value, off = $(`off-${key}`).value;
      if (ready) plan.ready_by = ready;
      if (preset) plan.preset = preset;
      if (off) plan.off_at = off;
      if (Object.keys(plan).length) days[key] = plan;
    }
    const presets = [...$("preset-rows").children].map((row) => {
      const [name, temp] = row.querySelectorAll("input");
      const value = number(temp.value);
      const same = temp.dataset.c !== undefined && temp.value === shown(Number(temp.dataset.c));
      const c = same ? Number(temp.dataset.c) : value === null ? null : Math.round(page.fromUnit(value) * 100) / 100;
      return { name: name.value.trim(), setpoint_c: c };
    });
    const url = $("ntfy-url").value.trim();
    return {
      version: current ? current.version : 1,
      presets,
      schedule: { auto_off_h: number($("auto-off-h").value), days },
      probe_offset_c: current ? current.probe_offset_c : 0,
      notify: { ntfy_url: url || null },
    };
  }

  // -- talking to the warmer ----------------------------------------------------------------------
  async function load() {
    try {
      fill(await page.api("GET", "/api/settings"));
      return true;
    } catch (e) {
      say("settings-msg", "Could not load the settings: " + refused(e));
      return false;
    }
  }

  /* The warmer's answer to a change: the document as it now holds (read again if the answer is not it). */
  async function answered(doc) {
    if (doc && doc.presets && doc.schedule) fill(doc);
    else await load();
  }

  async function save(ev) {
    ev.preventDefault();
    say("settings-msg", "Saving…");
    try {
      await answered(await page.api("PUT", "/api/settings", fromForm()));
      say("settings-msg", "Saved.");
    } catch (e) {
      say("settings-msg", "Not saved, nothing was changed: " + refused(e));
    }
    page.refresh();
  }

  // -- the probe check ------------------------------------------------------------------------------
  function raw(s) {
    if (s.raw_temperature_c !== undefined && s.raw_temperature_c !== null) return s.raw_temperature_c;
    return s.temperature_c === null ? null : s.temperature_c - (s.probe_offset_c || 0);
  }

  function offsetWords(c) {
    const d = page.unit() === "F" ? c * 9 / 5 : c;
    return `${d > 0 ? "+" : d < 0 ? "−" : ""}${Math.abs(d).toFixed(1)} °${page.unit()}`;
  }

  function renderCalibration() {
    const s = page.status();
    if (!s || !$("settings").open) return;
    const r = raw(s);
    say("calibration-now", (r === null ? "The probe gives no reading now." : `The probe reads ${page.fmt(r)}`) +
      (r !== null && s.probe_offset_c ? `; with the correction of ${offsetWords(s.probe_offset_c)} the dashboard ` +
        `shows ${page.fmt(s.temperature_c)}.` : r !== null ? "; no correction." : ""));
  }

  async function calibrate(body, done) {
    say("calibration-msg", "");
    try {
      const r = await page.api("POST", "/api/probe/calibrate", body);
      page.onStatus(r.status);
      if (current) current.probe_offset_c = r.probe_offset_c;
      say("calibration-msg", done(r));
    } catch (e) {
      say("calibration-msg", "Not changed: " + refused(e));
    }
    renderCalibration();
  }

  function checkThermometer() {
    const value = number($("thermometer").value);
    if (value === null || !Number.isFinite(value)) {
      say("calibration-msg", "Type what your thermometer reads, e.g. 51.2.");
      return;
    }
    const c = Math.round(page.fromUnit(value) * 100) / 100;
    calibrate({ thermometer_c: c }, (r) => `Correction ${offsetWords(r.probe_offset_c)} applied: ` +
      `the dashboard now shows ${page.fmt(r.status.temperature_c)}.`);
  }

  // -- backup -------------------------------------------------------------------------------------
  async function importFile() {
    const file = $("import-file").files[0];
    $("import-file").value = "";
    if (!file) return;
    let doc;
    try {
      doc = JSON.parse(await file.text());
    } catch (e) {
      say("import-msg", `Not imported, nothing was changed: ${file.name} is not a settings file (not JSON).`);
      return;
    }
    try {
      await answered(await page.api("POST", "/api/settings/import", doc));
      say("import-msg", `Imported ${file.name}.`);
    } catch (e) {
      say("import-msg", "Not imported, nothing was changed: " + refused(e));
    }
    page.refresh();
  }

  // -- the sheet ------------------------------------------------------------------------------------
  async function open() {
    for (const id of ["settings-msg", "calibration-msg", "import-msg"]) say(id, "");
    $("settings").showModal();
    if (await load()) renderCalibration();
  }

  function wire(lent) {
    page = lent;
    $("open-settings").addEventListener("click", open);
    $("close-settings").addEventListener("click", () => $("settings").close());
    $("settings-form").addEventListener("submit", save);
    $("add-preset").addEventListener("click", () => {
      $("preset-rows").append(presetRow({ name: "", setpoint_c: null }));
      fillPresetMenus();
      $("preset-rows").lastChild.querySelector("input").focus();
    });
    $("calibrate").addEventListener("click", checkThermometer);
    $("reset-offset").addEventListener("click", () => calibrate({ probe_offset_c: 0 },
      () => "Correction reset: the dashboard shows the probe's own reading."));
    $("import-file").addEventListener("change", importFile);
  }

  /* The settings button for a signed-in person; the day's words need the schedule (read rights). */
  async function show(signedIn) {
    $("open-settings").hidden = !signedIn;
    if (!signedIn && $("settings").open) $("settings").close();
    if (signedIn) {
      try { current = await page.api("GET", "/api/settings"); } catch (e) { current = null; }
    } else {
      current = null;
    }
  }

  return { wire, show, renderCalibration, current: () => current };
})();
