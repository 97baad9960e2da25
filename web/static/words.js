/* Every word the dashboard says about the warmer's state, in one place: the modes, the faults (most
   urgent instruction first), the events and who made a change. The API speaks in ids ("stuck_relay",
   "token:review") and degC; the therapist reads these sentences. Temperatures arrive in degC and are
   shown through the `fmt` the page passes in (degC or degF). */
"use strict";

window.StoneWords = (function () {
  /* Per fault kind (controller/core/safety.py FaultKind):
     headline: the first and largest line of the alarm banner: what to do now;
     heater:   whether the heater is on ("on" only when the relay would not switch off);
     what:     what happened, for the event list ("Fault: ...");
     todo:     the rest of the instruction, in plain words. */
  const FAULTS = {
    stuck_relay: {
      headline: "The heater is ON — unplug it now", heater: "on",
      what: "the heater would not switch off",
      todo: "The warmer cannot switch the heater off and the water keeps getting hotter. Unplug the heater " +
        "at the wall, do not use the stones, and have the warmer repaired before using it again.",
    },
    overtemp: {
      headline: "Water too hot — do not use the stones", heater: "off",
      what: "the water got too hot",
      todo: "The heater is off. Let the water cool below the set temperature, then acknowledge.",
    },
    over_target: {
      headline: "Water too hot — do not use the stones", heater: "off",
      what: "the water stayed well above the set temperature",
      todo: "The heater is off. Let the water cool, check that the heater switches off, then acknowledge.",
    },
    probe_disagree: {
      headline: "Check both temperature probes", heater: "off",
      what: "the two temperature probes disagreed",
      todo: "The heater is off. Put both probes in the water, then acknowledge.",
    },
    sensor: {
      headline: "Check the temperature probe", heater: "off",
      what: "the temperature probe stopped giving good readings",
      todo: "The heater is off. Check the probe's cable and that the probe is in the water, then acknowledge.",
    },
    heating: {
      headline: "The water is not warming — check the bath", heater: "off",
      what: "the water did not warm up with the heater on",
      todo: "The heater is off. Check the water level, that the heater is plugged in and that the probe " +
        "is in the water, then acknowledge.",
    },
    state: {
      headline: "Check the set temperature", heater: "off",
      what: "the saved settings could not be read or saved",
      todo: "The heater is off. Check the set temperature, then acknowledge.",
    },
  };
  const UNKNOWN_FAULT = {
    headline: "Fault — do not use the stones", heater: "off", what: "a fault",
    todo: "The heater is off until the fault is acknowledged.",
  };

  /* Per mode: the badge, an icon (READY must be told apart from across the room by more than a shade)
     and the sentence under the temperature. */
  const MODES = {
    starting: { badge: "Starting", icon: "", reason: () => "Waiting for the first temperature reading. " +
      "The heater stays off until then." },
    warming: { badge: "Warming", icon: "", reason: (s, fmt) => `Heating the water to ${fmt(s.setpoint_c)}. ` +
      "The stones are not ready yet." },
    holding: { badge: "Almost ready", icon: "⏳", reason: () => "At temperature; giving the stones a few " +
      "minutes to warm through." },
    ready: { badge: "READY", icon: "✔", reason: () => "The stones are at temperature and ready to use." },
    cooling: { badge: "Cooling", icon: "", reason: () => "The water is hotter than set, so the heater is off. " +
      "Check a stone on your wrist before use." },
    fault: { badge: "FAULT", icon: "⚠", reason: (s) => fault(s.fault).todo },
    off: { badge: "Off", icon: "", reason: () => "Switched off: the heater stays off. " +
      "The temperature is still watched." },
  };

  function fault(kind) {
    return FAULTS[kind] || UNKNOWN_FAULT;
  }

  function mode(name) {
    return MODES[name] || { badge: String(name), icon: "", reason: () => "" };
  }

  /* Who made a change, as the events' `source` says it. */
  function who(source) {
    if (!source || source === "controller" || source === "interlock") return "";
    const preset = /^(.*) \(preset (.*)\)$/.exec(source);  // "web (preset Body)": a preset's button
    if (preset) return [who(preset[1]), `(preset ${preset[2]})`].filter(Boolean).join(" ");
    if (source === "web") return "from the dashboard";
    if (source.startsWith("token:")) return `by the app “${source.slice(6)}”`;
    return {
      mqtt: "from Home Assistant", autotune: "by the tuning run", bench: "by the benchmark",
      state: "on start-up", cli: "from the command line", schedule: "by the schedule", "auto-off": "by auto-off",
    }[source] || "";
  }

  /* Temperatures written into the warmer's own messages ("52.0 degC") in the page's unit. */
  function temperatures(text, fmt) {
    return String(text || "").replace(/(-?\d+(?:\.\d+)?) ?degC/g, (_, c) => fmt(Number(c)));
  }

  /* One event in plain words. */
  function event(e, fmt) {
    const by = who(e.source);
    const tail = by ? ` ${by}` : "";
    switch (e.kind) {
      case "fault": {
        const f = fault(e.fault);
        return `Fault: ${f.what}. ` + (f.heater === "on" ? "Unplug the heater." : "The heater was switched off.");
      }
      case "ack": return `Fault cleared${tail}.`;
      case "setpoint": {
        const m = /(-?\d+(?:\.\d+)?) -> (-?\d+(?:\.\d+)?)/.exec(e.message || "");
        const to = e.setpoint_c !== null && e.setpoint_c !== undefined ? e.setpoint_c : (m ? Number(m[2]) : null);
        return (m ? `Set temperature ${fmt(Number(m[1]))} → ${fmt(to)}` : `Set temperature ${fmt(to)}`) + `${tail}.`;
      }
      case "start": return e.setpoint_c === null || e.setpoint_c === undefined ? "Warmer started."
        : `Warmer started, set to ${fmt(e.setpoint_c)}.`;
      case "ready": return "Stones ready.";
      case "off": return `Switched off${tail}: the heater is held off.`;
      case "on": return `Switched on${tail}.`;
      case "auto-on": return "Switched itself on by the schedule: " + temperatures(e.message, fmt) + ".";
      case "auto-off": return e.source === "auto-off"
        ? "Switched itself off: no one had touched it for a long time." : "Switched itself off by the schedule.";
      case "auto-off-warning": return "Switches itself off in 15 min unless someone keeps it on.";
      case "clock-unsynced": return "The clock is not set: the schedule waits.";
      default: return temperatures(e.message, fmt) + (tail ? ` (${by})` : "");
    }
  }

  return { FAULTS, fault, mode, event, temperatures };
})();
