/* stonewarmer's own small chart: water temperature, set temperature and heater duty on a canvas.
   No library (the Pi may be offline and nothing third-party is copied in). */
"use strict";

window.StoneChart = (function () {
  const PAD = { left: 40, right: 8, top: 8, bottom: 22 };
  const DUTY_SHARE = 0.22; // the heater band takes the bottom fifth of the plot

  function css(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  // Fit the canvas's pixel buffer to its CSS size (sharp on high-density phone screens).
  function fit(canvas) {
    const ratio = window.devicePixelRatio || 1;
    const w = canvas.clientWidth, h = canvas.clientHeight;
    if (canvas.width !== Math.round(w * ratio) || canvas.height !== Math.round(h * ratio)) {
      canvas.width = Math.round(w * ratio);
      canvas.height = Math.round(h * ratio);
    }
    const g = canvas.getContext("2d");
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    return { g, w, h };
  }

  function niceStep(span, targetTicks) {
    const raw = span / targetTicks;
    const pow = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * pow >= raw) return m * pow;
    return 10 * pow;
  }

  function clock(t) {
    const d = new Date(t * 1000);
    return String(d.getHours()).padStart(2, "0") + ":" + String(d.getMinutes()).padStart(2, "0");
  }

  /* data: {t: [s], temp: [unit or null], sp: [unit], duty: [0..1]}; opts: {since, until, gapS, unit, tempColor} */
  function draw(canvas, data, opts) {
    const { g, w, h } = fit(canvas);
    const x0 = PAD.left, x1 = w - PAD.right, y0 = PAD.top, y1 = h - PAD.bottom;
    const text = css("--muted"), line = css("--line");
    g.clearRect(0, 0, w, h);
    g.font = "12px system-ui, sans-serif";
    g.fillStyle = text;

    const n = data.t.length;
    let lo = Infinity, hi = -Infinity;
    for (let i = 0; i < n; i++) {
      for (const v of [data.temp[i], data.sp[i]]) {
        if (v !== null && v !== undefined) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
      }
    }
    if (!isFinite(lo)) {
      g.textAlign = "center";
      g.fillText("No readings in this span yet", (x0 + x1) / 2, (y0 + y1) / 2);
      return;
    }
    const minSpan = opts.unit === "F" ? 9 : 5;
    if (hi - lo < minSpan) { const mid = (hi + lo) / 2; lo = mid - minSpan / 2; hi = mid + minSpan / 2; }
    lo -= (hi - lo) * 0.08; hi += (hi - lo) * 0.05;
    const tempTop = y0, tempBottom = y1 - (y1 - y0) * DUTY_SHARE;
    const X = (t) => x0 + (t - opts.since) / (opts.until - opts.since) * (x1 - x0);
    const Y = (v) => tempBottom - (v - lo) / (hi - lo) * (tempBottom - tempTop);

    // grid and labels
    g.strokeStyle = line; g.lineWidth = 1; g.textAlign = "right"; g.textBaseline = "middle";
    const step = niceStep(hi - lo, 4);
    for (let v = Math.ceil(lo / step) * step; v <= hi; v += step) {
      g.beginPath(); g.moveTo(x0, Y(v)); g.lineTo(x1, Y(v)); g.stroke();
      g.fillText(v.toFixed(step < 1 ? 1 : 0) + "°", x0 - 4, Y(v));
    }
    const span = opts.until - opts.since;
    const tStep = span <= 3600 ? 900 : span <= 4 * 3600 ? 3600 : 3 * 3600;
    g.textAlign = "center"; g.textBaseline = "top";
    for (let t = Math.ceil(opts.since / tStep) * tStep; t <= opts.until; t += tStep) {
      g.beginPath(); g.moveTo(X(t), y0); g.lineTo(X(t), y1); g.stroke();
      g.fillText(clock(t), Math.min(Math.max(X(t), x0 + 16), x1 - 16), y1 + 5);
    }

    // heater duty: a filled band along the bottom
    g.fillStyle = css("--duty"); g.globalAlpha = 0.45;
    g.beginPath(); g.moveTo(X(data.t[0]), y1);
    for (let i = 0; i < n; i++) g.lineTo(X(data.t[i]), y1 - (data.duty[i] || 0) * (y1 - tempBottom));
    g.lineTo(X(data.t[n - 1]), y1); g.closePath(); g.fill();
    g.globalAlpha = 1;

    // setpoint (dashed) and water temperature; a gap in the data is a gap in the line
    path(g, data.t, data.sp, X, Y, opts.gapS, css("--sp"), [6, 5], 1.5);
    path(g, data.t, data.temp, X, Y, opts.gapS, opts.tempColor || css("--warming"), [], 2.5);
  }

  function path(g, ts, vs, X, Y, gapS, color, dash, width) {
    g.strokeStyle = color; g.setLineDash(dash); g.lineWidth = width; g.lineJoin = "round";
    g.beginPath();
    let open = false, lastT = null;
    for (let i = 0; i < ts.length; i++) {
      const v = vs[i];
      if (v === null || v === undefined) { open = false; continue; }
      if (open && lastT !== null && ts[i] - lastT > gapS) open = false;
      if (open) g.lineTo(X(ts[i]), Y(v)); else g.moveTo(X(ts[i]), Y(v));
      open = true; lastT = ts[i];
    }
    g.stroke(); g.setLineDash([]);
  }

  return { draw };
})();
