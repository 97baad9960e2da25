/* Sounds made with WebAudio (no audio files) and vibration: a repeating alarm (a fault, a lost
   connection), a chime when ready. Browsers allow both only after the user has touched the page, so the
   first tap unlocks them; before it nothing is tried (Chrome logs every blocked vibrate). */
"use strict";

window.StoneAlerts = (function () {
  const ALARM_EVERY_MS = 2000;
  let ctx = null, alarmTimer = null, touched = false;

  function unlock() {
    touched = true;
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return;
    if (!ctx) ctx = new Ctx();
    if (ctx.state === "suspended") ctx.resume();
  }
  ["pointerdown", "keydown"].forEach((e) => document.addEventListener(e, unlock, { passive: true }));

  /* Has the user touched the page yet (the browser's own answer where it has one)? */
  function unlocked() {
    return navigator.userActivation ? navigator.userActivation.hasBeenActive : touched;
  }

  function vibrate(pattern) {
    if (navigator.vibrate && unlocked()) navigator.vibrate(pattern);
  }

  function tone(freq, startS, lengthS, volume) {
    if (!ctx || ctx.state !== "running") return;
    const osc = ctx.createOscillator(), gain = ctx.createGain();
    const t0 = ctx.currentTime + startS;
    osc.type = "sine"; osc.frequency.value = freq;
    gain.gain.setValueAtTime(0.0001, t0);
    gain.gain.exponentialRampToValueAtTime(volume, t0 + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, t0 + lengthS);
    osc.connect(gain).connect(ctx.destination);
    osc.start(t0); osc.stop(t0 + lengthS + 0.05);
  }

  function chime() {
    tone(660, 0, 0.5, 0.25); tone(880, 0.25, 0.8, 0.25);
    vibrate(200);
  }

  function startAlarm() {
    if (alarmTimer) return;
    const beep = () => {
      tone(1000, 0, 0.18, 0.4); tone(1000, 0.3, 0.18, 0.4); tone(1000, 0.6, 0.18, 0.4);
      vibrate([300, 150, 300]);
    };
    beep();
    alarmTimer = setInterval(beep, ALARM_EVERY_MS);
  }

  function stopAlarm() {
    if (alarmTimer) clearInterval(alarmTimer);
    alarmTimer = null;
  }

  return { chime, startAlarm, stopAlarm, unlock, unlocked };
})();
