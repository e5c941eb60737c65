// vaekit latent explorer: plain JavaScript, no framework, nothing fetched from outside this server.
"use strict";
(function () {
  const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
  const PAD = 14;
  const $ = (id) => document.getElementById(id);
  const canvas = $("plane");
  const ctx = canvas.getContext("2d");
  const state = {
    info: null, points: null, probe: null, rest: [], label: 0, picks: [], uploads: [],
    dragging: false, downAt: null, inFlight: false, pending: null, decodedUrl: null,
  };

  // -- plane <-> pixels ---------------------------------------------------------------------
  function toPixel(u, v) {
    const [[u0, u1], [v0, v1]] = state.info.ranges;
    return [PAD + (u - u0) / (u1 - u0) * (canvas.width - 2 * PAD), PAD + (v1 - v) / (v1 - v0) * (canvas.height - 2 * PAD)];
  }
  function toPlane(x, y) {
    const [[u0, u1], [v0, v1]] = state.info.ranges;
    return [u0 + (x - PAD) / (canvas.width - 2 * PAD) * (u1 - u0), v1 - (y - PAD) / (canvas.height - 2 * PAD) * (v1 - v0)];
  }
  function eventPixel(e) {
    const box = canvas.getBoundingClientRect();
    return [(e.clientX - box.left) * canvas.width / box.width, (e.clientY - box.top) * canvas.height / box.height];
  }
  function colour(label) { return label === null || label === undefined ? "#1f77b4" : PALETTE[((label % 10) + 10) % 10]; }

  // -- drawing ------------------------------------------------------------------------------
  function draw() {
    const w = canvas.width, h = canvas.height;
    ctx.clearRect(0, 0, w, h);
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, w, h);
    const [ox, oy] = toPixel(0, 0);
    ctx.strokeStyle = "#ddd";
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(ox, 0); ctx.lineTo(ox, h); ctx.moveTo(0, oy); ctx.lineTo(w, oy);
    ctx.stroke();
    const p = state.points;
    ctx.globalAlpha = 0.75;
    for (let i = 0; i < p.u.length; i++) {
      const [x, y] = toPixel(p.u[i], p.v[i]);
      ctx.fillStyle = colour(p.label ? p.label[i] : null);
      ctx.beginPath();
      ctx.arc(x, y, 2.6, 0, 2 * Math.PI);
      ctx.fill();
    }
    ctx.globalAlpha = 1;
    if (state.picks.length === 2) {
      const [a, b] = state.picks.map((i) => toPixel(p.u[i], p.v[i]));
      ctx.strokeStyle = "#222"; ctx.setLineDash([5, 4]);
      ctx.beginPath(); ctx.moveTo(a[0], a[1]); ctx.lineTo(b[0], b[1]); ctx.stroke();
      ctx.setLineDash([]);
    }
    state.picks.forEach((i, k) => {
      const [x, y] = toPixel(p.u[i], p.v[i]);
      ctx.strokeStyle = "#000"; ctx.lineWidth = 2;
      ctx.beginPath(); ctx.arc(x, y, 7, 0, 2 * Math.PI); ctx.stroke();
      ctx.fillStyle = "#000"; ctx.font = "bold 12px sans-serif";
      ctx.fillText(k === 0 ? "A" : "B", x + 9, y - 7);
    });
    for (const m of state.uploads) {
      const [x, y] = toPixel(m.u, m.v);
      star(x, y, 9, "#d62728");
    }
    if (state.probe) {
      const [x, y] = toPixel(state.probe[0], state.probe[1]);
      ctx.strokeStyle = "#111"; ctx.lineWidth = 1.5;
      ctx.beginPath();
      ctx.moveTo(x - 10, y); ctx.lineTo(x - 3, y); ctx.moveTo(x + 3, y); ctx.lineTo(x + 10, y);
      ctx.moveTo(x, y - 10); ctx.lineTo(x, y - 3); ctx.moveTo(x, y + 3); ctx.lineTo(x, y + 10);
      ctx.stroke();
    }
  }
  function star(x, y, r, fill) {
    ctx.beginPath();
    for (let k = 0; k < 10; k++) {
      const a = -Math.PI / 2 + k * Math.PI / 5, rr = k % 2 ? r * 0.45 : r;
      ctx.lineTo(x + rr * Math.cos(a), y + rr * Math.sin(a));
    }
    ctx.closePath();
    ctx.fillStyle = fill; ctx.fill();
    ctx.strokeStyle = "#fff"; ctx.lineWidth = 1; ctx.stroke();
  }

  // -- talking to the server ----------------------------------------------------------------
  function showError(message, source) {  // an empty message clears the box only if it holds this source's error
    const box = $("error");
    if (!message && box.dataset.source !== source) return;
    box.textContent = message;
    box.dataset.source = source;
    box.hidden = !message;
  }
  async function api(path, options) {
    const response = await fetch(path, options);
    if (!response.ok) {
      let message = response.status + " " + response.statusText;
      try { message = (await response.json()).error || message; } catch (e) { /* not JSON */ }
      throw new Error(message);
    }
    return response;
  }
  function requestDecode() {  // at most one request in flight; the newest waiting one replaces older ones
    if (!state.probe) return;
    const body = JSON.stringify({ u: state.probe[0], v: state.probe[1], rest: state.rest, label: state.info.conditional ? state.label : null });
    if (state.inFlight) { state.pending = body; return; }
    sendDecode(body);
  }
  async function sendDecode(body) {
    state.inFlight = true;
    const start = performance.now();
    try {
      const response = await api("/api/decode", { method: "POST", headers: { "Content-Type": "application/json" }, body });
      const blob = await response.blob();
      const url = URL.createObjectURL(blob);
      if (state.decodedUrl) URL.revokeObjectURL(state.decodedUrl);
      state.decodedUrl = url;
      $("decoded").src = url;
      const round = performance.now() - start;
      $("latency").textContent = "decode: " + response.headers.get("X-Decode-Ms") + " ms server, " + round.toFixed(1) + " ms round trip";
      showError("", "decode");
    } catch (e) {
      showError("decode failed: " + e.message, "decode");
    } finally {
      state.inFlight = false;
      if (state.pending) { const next = state.pending; state.pending = null; sendDecode(next); }
    }
  }
  function setProbe(u, v) {
    state.probe = [u, v];
    $("coords").textContent = state.info.names[0] + "=" + u.toFixed(2) + "  " + state.info.names[1] + "=" + v.toFixed(2);
    draw();
    requestDecode();
  }
  async function showExample(i) {
    try {
      const ex = await (await api("/api/example/" + i)).json();
      $("original").src = ex.original;
      $("reconstruction").src = ex.reconstruction;
      $("example-title").textContent = "#" + ex.index + (ex.label === null ? "" : "  label " + ex.label);
      showError("", "example");
      state.picks = state.picks.concat([i]).slice(-2);
      draw();
      if (state.picks.length === 2) showStrip();
    } catch (e) {
      showError("could not show example " + i + ": " + e.message, "example");
    }
  }
  async function showStrip() {
    const [i, j] = state.picks;
    try {
      const body = JSON.stringify({ i, j, steps: 10, label: state.info.conditional ? state.label : null });
      const blob = await (await api("/api/interpolate", { method: "POST", headers: { "Content-Type": "application/json" }, body })).blob();
      $("strip").src = URL.createObjectURL(blob);
      $("strip-title").textContent = "#" + i + " → #" + j;
      showError("", "interpolate");
    } catch (e) {
      showError("interpolation failed: " + e.message, "interpolate");
    }
  }
  async function encodeFile(file) {
    const query = state.info.conditional ? "?label=" + state.label : "";
    try {
      const out = await (await api("/api/encode" + query, { method: "POST", headers: { "Content-Type": "application/octet-stream" }, body: file })).json();
      state.uploads.push({ u: out.u, v: out.v });
      $("upload-reconstruction").src = out.reconstruction;
      $("upload-caption").textContent = file.name + " (★ on the plane)";
      showError("", "encode");
      setProbe(out.u, out.v);
    } catch (e) {
      showError("could not encode " + file.name + ": " + e.message, "encode");
    }
  }

  // -- pointer, sliders, label, files -------------------------------------------------------
  function nearestPoint(x, y, radius) {
    const p = state.points;
    let best = -1, bestD = radius * radius;
    for (let i = 0; i < p.u.length; i++) {
      const [px, py] = toPixel(p.u[i], p.v[i]);
      const d = (px - x) * (px - x) + (py - y) * (py - y);
      if (d <= bestD) { best = i; bestD = d; }
    }
    return best;
  }
  canvas.addEventListener("pointerdown", (e) => {
    if (!state.info) return;
    state.dragging = true;
    state.downAt = eventPixel(e);
    canvas.setPointerCapture(e.pointerId);
    setProbe(...toPlane(...state.downAt));
  });
  canvas.addEventListener("pointermove", (e) => {
    if (state.dragging) setProbe(...toPlane(...eventPixel(e)));
  });
  canvas.addEventListener("pointerup", (e) => {
    if (!state.dragging) return;
    state.dragging = false;
    const [x, y] = eventPixel(e), [x0, y0] = state.downAt;
    if (Math.hypot(x - x0, y - y0) < 4) {
      const i = nearestPoint(x, y, 7);
      if (i >= 0) showExample(i);
    }
  });
  canvas.addEventListener("dragover", (e) => { e.preventDefault(); canvas.classList.add("dropping"); });
  canvas.addEventListener("dragleave", () => canvas.classList.remove("dropping"));
  canvas.addEventListener("drop", (e) => {
    e.preventDefault();
    canvas.classList.remove("dropping");
    if (e.dataTransfer.files.length) encodeFile(e.dataTransfer.files[0]);
  });
  $("file").addEventListener("change", (e) => { if (e.target.files.length) encodeFile(e.target.files[0]); });
  $("label").addEventListener("change", (e) => {
    state.label = Number(e.target.value);
    requestDecode();
    if (state.picks.length === 2) showStrip();
  });
  $("hold").addEventListener("click", () => {
    state.rest = state.rest.map(() => 0);
    document.querySelectorAll("#sliders input").forEach((s) => { s.value = 0; s.nextElementSibling.value = "0.00"; });
    requestDecode();
  });

  function buildControls(info) {
    $("summary").textContent = "latent_dim " + info.latent_dim + ", plane " + info.names[0] + " × " + info.names[1] +
      (info.plane === "pca" ? " (top principal directions of the training codes)" : "") + ", " + info.num_points + " test codes";
    const span = (k) => "[" + info.ranges[k][0].toFixed(2) + ", " + info.ranges[k][1].toFixed(2) + "]";
    $("axes").textContent = "→ " + info.names[0] + " " + span(0) + "   ↑ " + info.names[1] + " " + span(1) + "   (grey lines: 0)";
    state.rest = new Array(info.latent_dim - 2).fill(0);
    const sliders = $("sliders");
    for (let k = 0; k < info.latent_dim - 2; k++) {
      const [lo, hi] = info.ranges[k + 2];
      const name = document.createElement("label");
      name.textContent = info.names[k + 2];
      const input = document.createElement("input");
      Object.assign(input, { type: "range", min: lo, max: hi, step: (hi - lo) / 200, value: 0 });
      input.setAttribute("aria-label", info.names[k + 2]);
      const shown = document.createElement("output");
      shown.value = "0.00";
      input.addEventListener("input", () => { state.rest[k] = Number(input.value); shown.value = Number(input.value).toFixed(2); requestDecode(); });
      sliders.append(name, input, shown);
    }
    $("rest-card").hidden = info.latent_dim <= 2;
    if (info.conditional) {
      const select = $("label");
      for (let c = 0; c < info.num_classes; c++) select.append(new Option(String(c), String(c)));
      $("label-box").hidden = false;
    }
  }
  function buildLegend(labels) {
    if (!labels) return;
    const legend = $("legend");
    [...new Set(labels)].sort((a, b) => a - b).slice(0, 20).forEach((c) => {
      const item = document.createElement("span");
      item.style.setProperty("--c", colour(c));
      item.textContent = String(c);
      legend.append(item);
    });
  }

  async function start() {
    try {
      state.info = await (await api("/api/info")).json();
      state.points = await (await api("/api/points")).json();
    } catch (e) {
      showError("could not load the model's plane: " + e.message, "start");
      return;
    }
    buildControls(state.info);
    buildLegend(state.points.label);
    const [[u0, u1], [v0, v1]] = state.info.ranges;
    setProbe((u0 + u1) / 2, (v0 + v1) / 2);
    canvas.dataset.ready = "1";
  }

  // A hook for tests and scripts: where example i is drawn, in CSS pixels from the canvas's top-left corner.
  window.vaekitExplorer = {
    pointPixel(i) {
      const [x, y] = toPixel(state.points.u[i], state.points.v[i]);
      const box = canvas.getBoundingClientRect();
      return [x * box.width / canvas.width, y * box.height / canvas.height];
    },
    numPoints() { return state.points ? state.points.u.length : 0; },
  };
  start();
})();
