// reglab playground: the page. Plain JavaScript, no framework, no build step, nothing fetched
// from outside: controls become a setup sent up the WebSocket; binary frames come down and are
// drawn into canvases, only the newest one, once per animation frame.
"use strict";

const $ = (selector, root = document) => root.querySelector(selector);
const clone = (value) => JSON.parse(JSON.stringify(value));

// TF Playground's diverging colours: orange for class 0, blue for class 1.
const ORANGE = [245, 147, 34];
const BLUE = [8, 119, 189];
const NEUTRAL = [232, 234, 235];
const TRAIN_COLOUR = "#37474f";
const VAL_COLOUR = "#8e44ad";
const BEST_COLOUR = "#2e7d32";
const SIZES = { regions: 178, side: 96, weights: 54, curves: [282, 130] }; // CSS pixels

const app = {
  hello: null, // the server's hello: datasets, techniques, caps, defaults
  setup: null, // what the controls show; sent whole on every change
  task: "binary", // the data's, from the server's state
  points: null, // the data: {x, y, task, extent}
  frame: null, // the newest frame not yet drawn
  lastFrame: null, // the frame on the canvases (redrawn when a display toggle changes)
  playing: false, // from state and playing messages, not frames: a frame may predate a Pause
  uploading: false, // an upload was sent: its state switches the dataset to "upload"
  timer: null, // the debounce of setup changes
  sent: "", // the last setup sent, as JSON: the same one is not sent twice
  drawPending: false,
  ws: null,
  uid: 0,
};

// A 256-entry colour table: value/255 = P(class 1) or the share of seeds predicting it.
const PALETTE = (() => {
  const table = new Uint8ClampedArray(256 * 4);
  for (let i = 0; i < 256; i++) {
    const t = (i / 255) * 2 - 1;
    const end = t < 0 ? ORANGE : BLUE;
    const a = Math.abs(t);
    for (let c = 0; c < 3; c++) {
      const mixed = NEUTRAL[c] * (1 - a) + end[c] * a;
      table[4 * i + c] = 0.7 * mixed + 0.3 * 255; // lighter than the points drawn on top
    }
    table[4 * i + 3] = 255;
  }
  return table;
})();
const PALETTE32 = new Uint32Array(PALETTE.buffer); // one RGBA pixel a value
const rgb = (c) => `rgb(${c[0]},${c[1]},${c[2]})`;

// -- the connection ------------------------------------------------------------------------------

function connect() {
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
  ws.binaryType = "arraybuffer";
  ws.onmessage = (event) => (typeof event.data === "string" ? onMessage(JSON.parse(event.data)) : onFrame(event.data));
  ws.onclose = () => {
    showError("connection to the server closed: reload the page once `reglab playground` runs again");
    $("#status").value = "disconnected";
  };
  app.ws = ws;
}

function send(message) {
  if (app.ws && app.ws.readyState === WebSocket.OPEN) app.ws.send(JSON.stringify(message));
}

function onMessage(message) {
  if (message.type === "hello") {
    app.hello = message;
    fillDatasets();
    app.setup = readHash(message.defaults);
    showSetup();
    sendSetup();
  } else if (message.type === "state") {
    clearError();
    if (app.uploading && message.setup.data.dataset === "upload") {
      // Only the dataset: other controls may have changed since the upload left.
      app.uploading = false;
      app.setup.data.dataset = "upload";
      writeHash();
      showSetup();
    }
    app.points = message.points;
    app.playing = message.playing;
    if (message.points.task !== app.task) {
      app.task = message.points.task;
      showVariants();
    }
  } else if (message.type === "playing") {
    app.playing = message.playing;
    showStatus();
  } else if (message.type === "error") {
    showError(message.message);
  } else if (message.type === "export") {
    download(message.filename, new Blob([message.toml], { type: "application/toml" }));
    for (const [name, text] of Object.entries(message.files)) download(name, new Blob([text], { type: "text/csv" }));
  }
}

/** A binary frame: uint32 LE header length, the JSON header, padding to 4 bytes, the payload. */
function decodeFrame(buffer) {
  const length = new DataView(buffer).getUint32(0, true);
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 4, length)));
  const start = 4 + length + ((4 - ((4 + length) % 4)) % 4);
  const types = { uint8: Uint8Array, float32: Float32Array, uint32: Uint32Array };
  header.array = ([offset, count, dtype]) => new types[dtype](buffer, start + offset, count);
  return header;
}

function onFrame(buffer) {
  app.frame = decodeFrame(buffer);
  requestDraw();
}

function requestDraw() {
  if (app.drawPending) return;
  app.drawPending = true;
  requestAnimationFrame(draw);
}

// -- errors and downloads ----------------------------------------------------------------------

function showError(text) {
  const box = $("#error");
  box.textContent = text;
  box.hidden = false;
}

function clearError() {
  $("#error").hidden = true;
  $("#error").textContent = "";
}

function download(name, blob) {
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// -- the setup: URL hash <-> controls <-> server ----------------------------------------------------

function readHash(defaults) {
  if (location.hash.length <= 1) return clone(defaults);
  try {
    const s = JSON.parse(decodeURIComponent(location.hash.slice(1)));
    const variants = Array.isArray(s.variants) && s.variants.length ? s.variants : defaults.variants;
    return clone({
      data: { ...defaults.data, ...s.data },
      model: { ...defaults.model, ...s.model },
      train: { ...defaults.train, ...s.train },
      variants,
    });
  } catch (err) {
    showError(`URL: the part after # is not a playground setup (${err.message}); showing the defaults`);
    return clone(defaults);
  }
}

function writeHash() {
  history.replaceState(null, "", "#" + encodeURIComponent(JSON.stringify(app.setup)));
}

/** Send the setup now (a pending debounce included) and keep it in the URL. */
function sendSetup() {
  clearTimeout(app.timer);
  app.timer = null;
  writeHash();
  const text = JSON.stringify(app.setup);
  if (text === app.sent) return;
  app.sent = text;
  send({ type: "setup", setup: app.setup });
}

/** A control changed: read the controls, and send the setup once they rest for 300 ms. */
function changed() {
  try {
    app.setup = readSetup();
  } catch (err) {
    clearTimeout(app.timer); // nothing is sent while a control holds something unreadable
    app.timer = null;
    showError(err.message);
    return;
  }
  clearError();
  labelPanels();
  clearTimeout(app.timer);
  app.timer = setTimeout(sendSetup, 300);
}

/** Before a command, the server gets any setup change still waiting for its debounce. */
function flush() {
  if (app.timer !== null) sendSetup();
}

function fillDatasets() {
  const select = $("#dataset");
  for (const d of app.hello.datasets) select.append(new Option(d.label, d.name));
}

const generated = (name) => app.hello.datasets.some((d) => d.name === name && d.generated);

function showSetup() {
  const { data, model, train } = app.setup;
  const select = $("#dataset");
  if (data.dataset === "upload" && !select.querySelector('option[value="upload"]')) select.append(new Option("uploaded file", "upload"));
  select.value = data.dataset;
  $("#noise").value = data.noise;
  $("#validation").value = data.validation;
  $("#hidden").value = model.hidden.join(", ");
  $("#activation").value = model.activation;
  $("#optimizer").value = train.optimizer;
  $("#learning-rate").value = train.learning_rate;
  $("#batch-size").value = train.batch_size;
  $("#epochs").value = train.epochs;
  $("#seeds").value = train.seeds;
  showVariants();
}

function numberOf(input, label, integer = false) {
  const value = Number(input.value);
  if (input.value.trim() === "" || !Number.isFinite(value) || (integer && !Number.isInteger(value))) {
    throw new Error(`${label}: must be ${integer ? "a whole number" : "a number"}, got ${JSON.stringify(input.value)}`);
  }
  return value;
}

function readSetup() {
  const hiddenText = $("#hidden").value.trim();
  const hidden = hiddenText.split(/[\s,]+/).filter(Boolean).map(Number);
  if (!hidden.length || !hidden.every(Number.isInteger)) {
    throw new Error(`model.hidden: must be whole numbers separated by commas, e.g. 64, 64, got ${JSON.stringify(hiddenText)}`);
  }
  const dataset = $("#dataset").value;
  const setup = {
    data: {
      dataset,
      noise: numberOf($("#noise"), "data.noise"),
      validation: numberOf($("#validation"), "data.validation"),
      data_seed: app.setup.data.data_seed,
    },
    model: { hidden, activation: $("#activation").value },
    train: {
      optimizer: $("#optimizer").value,
      learning_rate: numberOf($("#learning-rate"), "train.learning_rate"),
      batch_size: numberOf($("#batch-size"), "train.batch_size", true),
      epochs: numberOf($("#epochs"), "train.epochs", true),
      seeds: numberOf($("#seeds"), "train.seeds", true),
    },
    variants: [...document.querySelectorAll("#variants .variant")].map(readVariant),
  };
  return setup;
}

// -- the variants' panels and their technique settings -------------------------------------------

const panels = () => [...document.querySelectorAll("#variants .variant")];

/** The settings a variant can take on this data's task, and those it already has. */
function controlsFor(variant) {
  return app.hello.techniques.filter((t) => t.tasks.includes(app.task) || (t.table ? t.table in variant : t.key in variant));
}

function showVariants() {
  const box = $("#variants");
  box.replaceChildren(...app.setup.variants.map(makePanel));
  labelPanels();
  $("#add-variant").disabled = app.setup.variants.length >= app.hello.caps.variants;
  const generatedData = generated(app.setup.data.dataset);
  for (const id of ["noise", "regenerate"]) $("#" + id).disabled = !generatedData;
  $("#validation").disabled = !generatedData && app.setup.data.dataset !== "upload";
  requestDraw();
}

function makePanel(variant) {
  const panel = $("#variant-template").content.firstElementChild.cloneNode(true);
  const uid = `v${++app.uid}`;
  panel.dataset.uid = uid;
  panel.variant = variant; // the variant as loaded: keeps a per-layer list that no input shows
  $(".name", panel).value = variant.name;
  $(".remove", panel).disabled = app.setup.variants.length <= 1;
  $(".remove", panel).addEventListener("click", () => {
    const variants = app.setup.variants.filter((_, i) => i !== panels().indexOf(panel));
    app.setup = { ...app.setup, variants };
    showVariants();
    sendSetup();
  });
  sizeCanvas($(".regions", panel), SIZES.regions, SIZES.regions);
  sizeCanvas($(".share", panel), SIZES.side, SIZES.side);
  sizeCanvas($(".weights", panel), SIZES.side, SIZES.weights);
  sizeCanvas($(".curves", panel), ...SIZES.curves);
  $(".share-figure", panel).hidden = app.task === "regression";

  const box = $(".techniques", panel);
  for (const t of controlsFor(variant).filter((c) => !c.table)) {
    box.append(...field(`${uid}-${t.key}`, t.key.replaceAll("_", " "), t, variant[t.key] ?? t.off).elements);
  }
  // A table technique (early stopping): a checkbox that turns it on, then its settings.
  const tables = [...new Set(controlsFor(variant).filter((c) => c.table).map((c) => c.table))];
  for (const table of tables) {
    const on = table in variant;
    const values = variant[table] || {};
    const check = input(`${uid}-${table}`, "checkbox");
    check.checked = on;
    check.className = "table-toggle";
    check.dataset.table = table;
    box.append(pair(check, table.replaceAll("_", " ")));
    for (const t of app.hello.techniques.filter((c) => c.table === table)) {
      const value = values[t.key] ?? t.default;
      const { elements, control } = field(`${uid}-${table}-${t.key}`, t.key.replaceAll("_", " "), t, value);
      control.dataset.table = table;
      control.disabled = !on;
      box.append(...elements);
    }
    check.addEventListener("change", () => box.querySelectorAll(`input[data-key][data-table="${table}"]`).forEach((i) => (i.disabled = !check.checked)));
  }
  return panel;
}

function input(id, type) {
  const element = document.createElement("input");
  element.id = id;
  element.type = type;
  return element;
}

function labelFor(control, text) {
  const label = document.createElement("label");
  label.htmlFor = control.id;
  label.textContent = text;
  label.title = text; // in full, where a narrow panel cuts it short
  return label;
}

/** A checkbox and its label, taking two grid cells. */
function pair(checkbox, text) {
  const span = document.createElement("span");
  span.className = "check";
  span.append(checkbox, labelFor(checkbox, text));
  return span;
}

/** One technique setting's input (a checkbox for a bool, else a number) and what to show. */
function field(id, text, t, value) {
  const control = input(id, t.kind === "bool" ? "checkbox" : "number");
  control.dataset.key = t.key;
  control.title = `${t.doc} (${t.allowed})`;
  if (t.kind === "bool") {
    control.checked = Boolean(value);
    return { elements: [pair(control, text)], control };
  }
  if (t.min !== null) control.min = t.min;
  if (t.max !== null) control.max = t.max;
  control.step = t.kind === "integer" ? 1 : t.max !== null && t.max <= 1 ? 0.05 : "any";
  if (Array.isArray(value)) control.placeholder = value.join(", "); // per layer: kept unless typed over
  else control.value = value;
  return { elements: [labelFor(control, text), control], control };
}

function readVariant(panel) {
  const variant = clone(panel.variant); // keeps keys this page has no control for
  variant.name = $(".name", panel).value.trim();
  const tables = {};
  for (const check of panel.querySelectorAll(".techniques input.table-toggle")) {
    delete variant[check.dataset.table];
    if (check.checked) tables[check.dataset.table] = {};
  }
  for (const control of panel.querySelectorAll(".techniques input[data-key]")) {
    const key = control.dataset.key;
    const table = control.dataset.table || null;
    const t = app.hello.techniques.find((c) => c.key === key && (c.table || null) === table);
    const label = `variant ${variant.name}: ${table ? table + "." : ""}${key}`;
    let value;
    if (t.kind === "bool") value = control.checked;
    else if (control.value === "" && Array.isArray(panel.variant[key])) value = panel.variant[key];
    else if (table && !(table in tables)) continue; // a table turned off: its settings are not read
    else value = numberOf(control, label, t.kind === "integer");
    if (table) {
      if (table in tables) tables[table][key] = value;
    } else {
      delete variant[key];
      if (value !== t.off) variant[key] = value; // a technique at its off value is left out
    }
  }
  return { ...variant, ...tables };
}

function labelPanels() {
  for (const panel of panels()) {
    const name = $(".name", panel).value.trim();
    panel.setAttribute("aria-label", `variant ${name}`);
    const fit = app.task === "regression" ? `fit of ${name}: median member and 10-90 % band` : `decision regions of ${name}`;
    $(".regions", panel).setAttribute("aria-label", fit);
    $(".share", panel).setAttribute("aria-label", `share of seeds predicting class 1, ${name}`);
    $(".weights", panel).setAttribute("aria-label", `first-layer weight histogram of ${name}`);
    $(".curves", panel).setAttribute("aria-label", `learning curves of ${name}`);
    $(".remove", panel).setAttribute("aria-label", `Remove variant ${name}`);
  }
}

function addVariant() {
  const names = new Set(app.setup.variants.map((v) => v.name));
  let n = app.setup.variants.length + 1;
  while (names.has(`variant ${n}`)) n++;
  app.setup = { ...app.setup, variants: [...app.setup.variants, { name: `variant ${n}` }] };
  showVariants();
  sendSetup();
}

// -- drawing ----------------------------------------------------------------------------------

/** Give a canvas a CSS size, backed by device pixels; its context draws in CSS pixels. */
function sizeCanvas(canvas, width, height) {
  const ratio = window.devicePixelRatio || 1;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
}

/** A canvas's context, drawing in CSS pixels, and its CSS width and height. */
const context = (canvas) => {
  const ctx = canvas.getContext("2d");
  const ratio = canvas.width / parseFloat(canvas.style.width);
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  return [ctx, parseFloat(canvas.style.width), parseFloat(canvas.style.height)];
};

function draw() {
  app.drawPending = false;
  const frame = app.frame || app.lastFrame;
  app.frame = null;
  if (!frame || !app.points) return;
  app.lastFrame = frame;
  showStatus();
  const scale = curveScale(frame);
  const byName = new Map(panels().map((p) => [$(".name", p).value.trim(), p]));
  for (const v of frame.variants) {
    const panel = byName.get(v.name);
    if (panel) drawVariant(panel, v, frame, scale);
  }
}

/** The server's epoch (of the variant furthest on) and frame rate, and whether it trains. */
function showStatus() {
  const frame = app.lastFrame;
  if (!frame) return;
  const epoch = Math.max(...frame.variants.map((v) => v.epoch));
  const done = frame.variants.every((v) => v.done);
  $("#status").value = `epoch ${epoch} · ${frame.fps.toFixed(1)} fps · ${done ? "done" : app.playing ? "playing" : "paused"}`;
}

function drawVariant(panel, v, frame, scale) {
  const stopped = v.stops.filter((s) => s.reason !== "max_epochs").length;
  $(".progress", panel).textContent = `epoch ${v.epoch} of ${v.epochs} · ${stopped} of ${v.members} stopped`;
  $(".regions-caption", panel).textContent = `median member (seed ${v.median_seed})`;
  const split = frame.array(v.split);
  if (v.regions) {
    drawMap($(".regions", panel), frame.array(v.regions), frame.grid, split);
    drawMap($(".share", panel), frame.array(v.share), frame.grid, split);
  } else {
    drawFit($(".regions", panel), frame.array(v.curve), frame.array(v.band_lo), frame.array(v.band_hi), split);
  }
  drawWeights($(".weights", panel), frame.array(v.weights.counts), v.weights.range);
  drawCurves($(".curves", panel), v, frame, scale);
}

let scratch = null; // a G x G canvas the maps are painted into before scaling

function drawMap(canvas, values, grid, split) {
  if (!scratch || scratch.width !== grid) {
    scratch = document.createElement("canvas");
    scratch.width = scratch.height = grid;
  }
  const small = scratch.getContext("2d");
  const image = small.createImageData(grid, grid);
  const pixels = new Uint32Array(image.data.buffer);
  for (let i = 0; i < values.length; i++) pixels[i] = PALETTE32[values[i]];
  small.putImageData(image, 0, 0);
  const [ctx, w, h] = context(canvas);
  // The grid's first and last cells sit on the extent's edges: stretch by cell centres.
  const sx = w / (grid - 1);
  const sy = h / (grid - 1);
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(scratch, -sx / 2, -sy / 2, grid * sx, grid * sy);
  drawPoints(ctx, w, h, split);
}

function drawFit(canvas, curve, lo, hi, split) {
  const [ctx, w, h] = context(canvas);
  const [, , y0, y1] = app.points.extent;
  const px = (i, n) => (i / (n - 1)) * w;
  const py = (y) => ((y1 - y) / (y1 - y0)) * h;
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, w, h);
  ctx.beginPath();
  for (let i = 0; i < hi.length; i++) ctx.lineTo(px(i, hi.length), py(hi[i]));
  for (let i = lo.length - 1; i >= 0; i--) ctx.lineTo(px(i, lo.length), py(lo[i]));
  ctx.fillStyle = "rgba(8,119,189,0.2)";
  ctx.fill();
  ctx.beginPath();
  for (let i = 0; i < curve.length; i++) ctx.lineTo(px(i, curve.length), py(curve[i]));
  ctx.strokeStyle = rgb(BLUE);
  ctx.lineWidth = 2;
  ctx.stroke();
  drawPoints(ctx, w, h, split);
}

/** Training rows filled, validation rows hollow, coloured by label; rows in neither are left out. */
function drawPoints(ctx, w, h, split) {
  if (!$("#show-points").checked) return;
  const { x, y, task, extent } = app.points;
  const [x0, x1, y0, y1] = extent;
  const radius = Math.max(1.4, w / 75);
  ctx.lineWidth = radius / 2.2;
  for (let i = 0; i < x.length; i++) {
    if (!split[i]) continue;
    const [a, b] = task === "regression" ? [x[i][0], y[i]] : x[i];
    const colour = task === "regression" ? "#37474f" : rgb(y[i] > 0.5 ? BLUE : ORANGE);
    ctx.beginPath();
    ctx.arc(((a - x0) / (x1 - x0)) * w, ((y1 - b) / (y1 - y0)) * h, radius, 0, 2 * Math.PI);
    if (split[i] === 1) {
      ctx.fillStyle = colour;
      ctx.fill();
      ctx.strokeStyle = "#fff";
    } else {
      ctx.strokeStyle = colour;
    }
    ctx.stroke();
  }
}

function drawWeights(canvas, counts, [lo, hi]) {
  const [ctx, w, h] = context(canvas);
  ctx.clearRect(0, 0, w, h);
  const top = Math.max(1, ...counts);
  const base = h - 12;
  const bar = w / counts.length;
  ctx.fillStyle = "#78909c";
  counts.forEach((c, i) => {
    const height = (c / top) * (base - 2);
    ctx.fillRect(i * bar + 0.5, base - height, bar - 1, height);
  });
  ctx.fillStyle = "#555";
  ctx.font = "9px system-ui, sans-serif";
  ctx.textBaseline = "bottom";
  ctx.textAlign = "left";
  ctx.fillText(String(lo), 0, h);
  ctx.textAlign = "center";
  ctx.fillText("0", w / 2, h);
  ctx.textAlign = "right";
  ctx.fillText(String(hi), w, h);
}

/** One loss scale for every variant's curves (log), so their panels compare at a glance. */
function curveScale(frame) {
  let lo = Infinity;
  let hi = -Infinity;
  let epochs = 10;
  for (const v of frame.variants) {
    epochs = Math.max(epochs, v.epoch);
    for (const series of Object.values(v.curves)) {
      for (const part of [series.q1, series.q3, series.median]) {
        for (const value of frame.array(part)) {
          if (value > 0 && Number.isFinite(value)) {
            lo = Math.min(lo, value);
            hi = Math.max(hi, value);
          }
        }
      }
    }
  }
  if (!(lo < hi)) [lo, hi] = lo === Infinity ? [0.1, 1] : [lo / 2, lo * 2];
  return { lo: Math.log10(lo) - 0.05, hi: Math.log10(hi) + 0.05, epochs };
}

function drawCurves(canvas, v, frame, scale) {
  const [ctx, w, h] = context(canvas);
  const pad = { left: 30, right: 6, top: 8, bottom: 14 };
  const px = (epoch) => pad.left + (epoch / Math.max(1, scale.epochs - 1)) * (w - pad.left - pad.right);
  const py = (loss) => pad.top + ((scale.hi - Math.log10(loss)) / (scale.hi - scale.lo)) * (h - pad.top - pad.bottom);
  ctx.clearRect(0, 0, w, h);
  ctx.strokeStyle = "#ccc";
  ctx.lineWidth = 1;
  ctx.strokeRect(pad.left, pad.top, w - pad.left - pad.right, h - pad.top - pad.bottom);
  ctx.fillStyle = "#555";
  ctx.font = "9px system-ui, sans-serif";
  ctx.textAlign = "right";
  ctx.textBaseline = "top";
  ctx.fillText(formatLoss(10 ** scale.hi), pad.left - 3, pad.top);
  ctx.textBaseline = "bottom";
  ctx.fillText(formatLoss(10 ** scale.lo), pad.left - 3, h - pad.bottom);
  ctx.textAlign = "center";
  ctx.fillText(`epoch ${scale.epochs}`, w - 30, h);
  for (const [series, colour] of [["loss", TRAIN_COLOUR], ["val_loss", VAL_COLOUR]]) {
    const parts = v.curves[series];
    const [q1, median, q3] = [parts.q1, parts.median, parts.q3].map(frame.array);
    ctx.globalAlpha = 0.18;
    ctx.fillStyle = colour;
    band(ctx, q1, q3, px, py);
    ctx.globalAlpha = 1;
    ctx.strokeStyle = colour;
    ctx.lineWidth = 1.5;
    line(ctx, median, px, py);
  }
  const bottom = h - pad.bottom;
  for (const s of v.stops) {
    if (s.reason === "max_epochs") continue;
    marker(ctx, "▼", VAL_COLOUR, px(s.epoch), pad.top + 6);
    if (s.restored && s.best_epoch >= 0) marker(ctx, "◆", BEST_COLOUR, px(s.best_epoch), bottom - 4);
  }
}

const usable = (value) => value > 0 && Number.isFinite(value);

/** A polyline through the values, broken where one is missing (every member stopped). */
function line(ctx, values, px, py) {
  ctx.beginPath();
  let on = false;
  values.forEach((value, i) => {
    if (!usable(value)) return void (on = false);
    if (on) ctx.lineTo(px(i), py(value));
    else ctx.moveTo(px(i), py(value));
    on = true;
  });
  ctx.stroke();
}

/** The area between two curves, in runs of epochs where both are there. */
function band(ctx, lower, upper, px, py) {
  let start = 0;
  for (let i = 0; i <= lower.length; i++) {
    if (i < lower.length && usable(lower[i]) && usable(upper[i])) continue;
    if (i - start > 1) {
      ctx.beginPath();
      for (let j = start; j < i; j++) ctx.lineTo(px(j), py(upper[j]));
      for (let j = i - 1; j >= start; j--) ctx.lineTo(px(j), py(lower[j]));
      ctx.fill();
    }
    start = i + 1;
  }
}

function marker(ctx, glyph, colour, x, y) {
  ctx.fillStyle = colour;
  ctx.font = "8px system-ui, sans-serif";
  ctx.textAlign = "center";
  ctx.textBaseline = "middle";
  ctx.fillText(glyph, x, y);
}

const formatLoss = (value) => (value >= 10 ? value.toFixed(0) : value.toPrecision(2));

/** A PNG of every variant's canvases, laid out as on the page, with the variants' names. */
function snapshot() {
  const box = $("#variants").getBoundingClientRect();
  const canvases = [...document.querySelectorAll("#variants canvas")].filter((c) => c.getBoundingClientRect().width);
  const height = Math.max(...canvases.map((c) => c.getBoundingClientRect().bottom)) - box.top + 8;
  const ratio = window.devicePixelRatio || 1;
  const out = document.createElement("canvas");
  out.width = Math.ceil(box.width * ratio);
  out.height = Math.ceil(height * ratio);
  const ctx = out.getContext("2d");
  ctx.scale(ratio, ratio);
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, box.width, height);
  ctx.fillStyle = "#222";
  ctx.font = "bold 13px system-ui, sans-serif";
  ctx.textBaseline = "top";
  for (const panel of panels()) {
    const name = $(".name", panel).getBoundingClientRect();
    ctx.fillText($(".name", panel).value, name.left - box.left, name.top - box.top + 4);
    for (const canvas of panel.querySelectorAll("canvas")) {
      const r = canvas.getBoundingClientRect();
      if (r.width) ctx.drawImage(canvas, r.left - box.left, r.top - box.top, r.width, r.height);
    }
  }
  out.toBlob((blob) => download("playground.png", blob), "image/png");
}

// -- wiring ------------------------------------------------------------------------------------

function upload(event) {
  const file = event.target.files[0];
  event.target.value = ""; // the same file may be chosen again
  if (!file) return;
  const cap = app.hello.caps.upload_bytes;
  if (file.size > cap) return showError(`${file.name}: the playground takes files up to ${cap / 1000} kB, got ${Math.ceil(file.size / 1000)} kB`);
  file.text().then((text) => {
    flush();
    app.uploading = true;
    send({ type: "upload", name: file.name, text });
  });
}

function command(type) {
  flush();
  send({ type });
  if (type === "step" || type === "reset") {
    app.playing = false; // as the server does, which says nothing of it
    showStatus();
  }
}

/** New data from the same generator: the next data seed. (The page, not the server, owns the
 * setup, so the page sends the new setup: the two cannot drift apart.) */
function regenerate() {
  app.setup.data.data_seed += 1;
  sendSetup();
}

document.addEventListener("DOMContentLoaded", () => {
  for (const type of ["play", "pause", "step", "reset", "export"]) $("#" + type).addEventListener("click", () => command(type));
  $("#regenerate").addEventListener("click", regenerate);
  $("#snapshot").addEventListener("click", snapshot);
  $("#add-variant").addEventListener("click", addVariant);
  $("#show-points").addEventListener("change", requestDraw);
  $("#upload").addEventListener("change", upload);
  $("#controls").addEventListener("submit", (event) => event.preventDefault());
  $("#controls").addEventListener("input", (event) => event.target.id !== "upload" && changed());
  $("#controls").addEventListener("change", (event) => {
    if (event.target.id === "upload") return;
    changed();
    if (event.target.id === "dataset") showVariants(); // which inputs apply, which buttons work
  });
  // A setup pasted into the address bar (replaceState, used for our own changes, fires no event).
  window.addEventListener("hashchange", () => {
    if (!app.hello) return;
    app.setup = readHash(app.hello.defaults);
    showSetup();
    sendSetup();
  });
  $("#variants").addEventListener("input", changed);
  $("#variants").addEventListener("change", changed);
  connect();
});
