// intellego insights: the explorer's front end, one hand-written ES module with no build step.
//
// The same file runs in three hosts, each behind a small transport with three calls
// (config() -> Promise<config>, run(request, onProgress) -> Promise<result>, cancel()):
//   * the local web server:   mount(el, httpTransport("", token))
//   * the anywidget widget:    export default { render({ model, el }) }
//   * the static HTML export:  mount(el, staticTransport(data)), inlined in the page, fully offline.
// Heat maps, token colours and bars are drawn here from raw arrays, so colour map, sign mode and opacity
// change without asking the host again. LLM results (config.llm, made by insights/llm_view.py) travel in the
// config and are drawn here too: the prompt coloured for one chosen target token, and every target token's row.

const COLORMAPS = {
  coolwarm: [[59, 76, 192], [141, 176, 254], [221, 221, 221], [244, 154, 123], [180, 4, 38]],
  PiYG: [[142, 1, 82], [222, 119, 174], [247, 247, 247], [127, 188, 65], [39, 100, 25]],
  viridis: [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]],
  magma: [[0, 0, 4], [81, 18, 124], [183, 55, 121], [252, 137, 97], [252, 253, 191]],
  gray: [[0, 0, 0], [255, 255, 255]],
};
const MATRIX_CELLS = 40000;  // the LLM heat map of all target tokens is drawn up to this many cells
const SIGNS = {
  all: "signed (all)",
  positive: "positive only",
  negative: "negative only",
  absolute: "absolute value",
};

// ------------------------------------------------------------------------------------------ transports

/** The error a transport rejects with when the user's Cancel stopped the job (shown as a note, not an error). */
function cancelledError() {
  const error = new Error("cancelled");
  error.cancelled = true;
  return error;
}

/** Talks to intellego.insights.server: JSON over fetch, token in a header, job progress by polling. */
export function httpTransport(base, token) {
  let current = null;
  async function call(method, path, body) {
    const headers = { "X-Intellego-Token": token };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(base + path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    try { data = await response.json(); } catch (_) { data = null; }
    if (!response.ok) throw new Error((data && data.error) || `HTTP ${response.status}`);
    return data;
  }
  return {
    config: () => call("GET", "/api/config"),
    async run(request, onProgress) {
      let job = await call("POST", "/api/jobs", request);
      current = job.id;
      try {
        while (job.state === "queued" || job.state === "running") {
          onProgress(job);
          await new Promise((resolve) => setTimeout(resolve, 120));
          job = await call("GET", `/api/jobs/${job.id}`);
        }
      } finally {
        if (current === job.id) current = null;
      }
      if (job.state === "done") return job.result;
      if (job.state === "cancelled") throw cancelledError();
      throw new Error(job.error || job.state);
    },
    cancel() {
      if (current !== null) call("POST", `/api/jobs/${current}/cancel`).catch(() => {});
    },
  };
}

/** Talks to intellego.insights.widget through an anywidget model: custom messages both ways. */
export function widgetTransport(model) {
  let seq = 0;
  const pending = new Map();
  const onMessage = (msg) => {
    const entry = msg && pending.get(msg.id);
    if (!entry) return;
    if (msg.type === "progress") entry.onProgress(msg);
    else if (msg.type === "result") { pending.delete(msg.id); entry.resolve(msg.result); }
    else if (msg.type === "error") { pending.delete(msg.id); entry.reject(new Error(msg.message)); }
    else if (msg.type === "cancelled") { pending.delete(msg.id); entry.reject(cancelledError()); }
  };
  model.on("msg:custom", onMessage);
  return {
    config: async () => model.get("config"),
    run(request, onProgress) {
      const id = `r${++seq}`;
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject, onProgress });
        model.send({ type: "run", id, request });
      });
    },
    cancel() {
      for (const id of pending.keys()) model.send({ type: "cancel", id });
    },
    close() { model.off("msg:custom", onMessage); },
  };
}

/** Answers from the runs saved in a static export; nothing leaves the page. */
export function staticTransport(data) {
  return {
    config: async () => data.config,
    async run(request) {
      const run = data.runs[request.run];
      if (!run) throw new Error(`this export has no run ${request.run}`);
      const kept = run.samples.filter((s) => matches(s, request.classes || [], request.prediction || "all"));
      const samples = kept.slice(request.offset, request.offset + request.count);
      const filtered = kept.length < run.samples.length;
      return {
        ...run, samples, offset: request.offset, count: request.count,
        has_more: request.offset + request.count < kept.length,
        message: samples.length ? (filtered ? `${kept.length} of the ${run.samples.length} saved samples match` : "")
          : (filtered ? "no saved sample matches these filters" : "no more samples in this export"),
      };
    },
    cancel() {},
  };
}

/** Whether the host has samples to fetch (a session of LLM results only has none). */
function hasSamples(cfg) {
  return Boolean(cfg) && (cfg.static ? cfg.runs.length > 0 : cfg.models.length > 0);
}

/** The session's filter, on a saved sample: its true class (the predicted one when it has no label) among
 * `classes` (none = all), and `prediction` "all", "correct" or "incorrect". */
function matches(sample, classes, prediction) {
  const key = sample.label ?? (sample.predictions[0] || {}).label;
  if (classes.length && !classes.includes(key)) return false;
  if (prediction === "correct") return sample.correct === true;
  if (prediction === "incorrect") return sample.correct === false;
  return true;
}

export default {
  render({ model, el }) {
    const transport = widgetTransport(model);
    const app = mount(el, transport);
    return () => { app.destroy(); transport.close(); };
  },
};

// ------------------------------------------------------------------------------------------ helpers

function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else node[key] = value;
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) {
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }
  return node;
}

function decode(array) {
  if (array.decoded) return array.decoded;
  const text = atob(array.b64);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  const values = array.dtype === "uint8" ? bytes : new Float32Array(bytes.buffer);
  Object.defineProperty(array, "decoded", { value: values, enumerable: false });
  return values;
}

export function colour(name, t) {
  const stops = COLORMAPS[name] || COLORMAPS.coolwarm;
  const x = Math.min(1, Math.max(0, t)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(x));
  const f = x - i;
  return stops[i].map((c, k) => Math.round(c + f * (stops[i + 1][k] - c)));
}

function signed(value, sign) {
  if (sign === "positive") return Math.max(value, 0);
  if (sign === "negative") return Math.max(-value, 0);
  if (sign === "absolute") return Math.abs(value);
  return value;
}

/** Values after the sign mode, scaled by their 99th percentile magnitude into [-1, 1]. */
function normalised(values, sign) {
  const out = new Float32Array(values.length);
  const mags = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) {
    out[i] = signed(values[i], sign);
    mags[i] = Math.abs(out[i]);
  }
  mags.sort();
  const scale = mags.length ? mags[Math.floor(0.99 * (mags.length - 1))] || mags[mags.length - 1] : 0;
  for (let i = 0; i < out.length; i++) out[i] = scale > 0 ? Math.max(-1, Math.min(1, out[i] / scale)) : 0;
  return out;
}

/** Colour and opacity for a normalised value: signed mode spans the whole map, others its upper half. */
function paint(v, view) {
  const t = view.sign === "all" ? 0.5 + 0.5 * v : v;
  return { rgb: colour(view.cmap, t), alpha: Math.abs(v) };
}

// ------------------------------------------------------------------------------------------ drawing

function drawImage(canvas, image) {
  const [height, width] = image.shape;
  const pixels = decode(image);
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext("2d");
  const data = ctx.createImageData(width, height);
  for (let i = 0; i < width * height; i++) {
    data.data.set([pixels[3 * i], pixels[3 * i + 1], pixels[3 * i + 2], 255], 4 * i);
  }
  ctx.putImageData(data, 0, 0);
}

function drawOverlay(canvas, image, heat, view) {
  const [height, width] = image.shape;
  const [hh, hw] = heat.shape;
  const pixels = decode(image);
  const values = normalised(decode(heat), view.sign);
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext("2d");
  const data = ctx.createImageData(width, height);
  for (let y = 0; y < height; y++) {
    const row = Math.min(hh - 1, Math.floor((y * hh) / height)) * hw;
    for (let x = 0; x < width; x++) {
      const i = y * width + x;
      const { rgb, alpha } = paint(values[row + Math.min(hw - 1, Math.floor((x * hw) / width))], view);
      const a = Math.min(1, view.opacity * Math.sqrt(alpha));
      const grey = 0.3 * pixels[3 * i] + 0.59 * pixels[3 * i + 1] + 0.11 * pixels[3 * i + 2];
      for (let c = 0; c < 3; c++) data.data[4 * i + c] = Math.round((1 - a) * grey + a * rgb[c]);
      data.data[4 * i + 3] = 255;
    }
  }
  ctx.putImageData(data, 0, 0);
}

/** The colour legend: the map across the values the sign mode shows, with what its ends mean. */
function drawLegend(box, view) {
  const canvas = h("canvas", { class: "ii-legend-bar", width: 120, height: 10, title: `${view.cmap}, ${view.sign}` });
  const ctx = canvas.getContext("2d");
  for (let x = 0; x < canvas.width; x++) {
    const t = x / (canvas.width - 1);
    const { rgb } = paint(view.sign === "all" ? 2 * t - 1 : t, view);
    ctx.fillStyle = `rgb(${rgb.join(",")})`;
    ctx.fillRect(x, 0, 1, canvas.height);
  }
  const ends = {
    all: ["negative", "0", "positive"], positive: ["0", "positive"],
    negative: ["0", "negative (size)"], absolute: ["0", "|attribution|"],
  }[view.sign] || ["low", "high"];
  box.replaceChildren(canvas, h("div", { class: "ii-legend-labels" }, ends.map((t) => h("span", {}, t))));
  box.dataset.sign = view.sign;
}

function bar(label, value, scale, view, detail) {
  const v = scale > 0 ? Math.max(-1, Math.min(1, signed(value, view.sign) / scale)) : 0;
  const { rgb } = paint(v, view);
  const fill = h("span", { class: "ii-fill" });  // CSSOM styles below are allowed by the page's CSP
  fill.style.width = `${Math.round(Math.abs(v) * 50)}%`;
  fill.style.background = `rgb(${rgb.join(",")})`;
  fill.classList.add(v < 0 ? "ii-neg" : "ii-pos");
  return h("div", { class: "ii-bar", title: `${label}: ${value.toPrecision(4)}` },
    h("span", { class: "ii-bar-label" }, label),
    h("span", { class: "ii-track" }, fill),
    h("span", { class: "ii-bar-value" }, detail ?? value.toFixed(3)));
}

function featureView(feature, view) {
  const box = h("div", { class: `ii-feature ii-${feature.kind}` }, h("div", { class: "ii-feature-name" }, feature.name));
  if (feature.kind === "image") {
    const input = h("canvas", { class: "ii-canvas ii-input", title: "input" });
    const overlay = h("canvas", { class: "ii-canvas ii-heat", title: "attribution overlay" });
    drawImage(input, feature.image);
    drawOverlay(overlay, feature.image, feature.heat, view);
    box.append(h("div", { class: "ii-images" }, input, overlay));
  } else if (feature.kind === "text") {
    const values = normalised(Float32Array.from(feature.attribution), view.sign);
    box.append(h("p", { class: "ii-tokens" }, feature.tokens.map((token, i) => {
      const { rgb, alpha } = paint(values[i], view);
      const span = h("span", { class: "ii-token", title: feature.attribution[i].toPrecision(4) }, token);
      span.style.background = `rgba(${rgb.join(",")},${(view.opacity * alpha).toFixed(3)})`;
      return span;
    })));
  } else {
    const scale = Math.max(0, ...feature.attribution.map((v) => Math.abs(signed(v, view.sign))));
    box.append(h("div", { class: "ii-columns" }, feature.names.map((name, i) => bar(
      feature.values ? `${name} = ${Number(feature.values[i]).toPrecision(3)}` : name,
      feature.attribution[i], scale, view))));
  }
  return box;
}

function sampleCard(sample, view) {
  const top = sample.predictions[0] || { label: "?", score: 0 };
  const mark = sample.correct === null ? "" : sample.correct ? "correct" : "incorrect";
  const scale = Math.max(0, ...sample.features.map((f) => Math.abs(signed(f.contribution, view.sign))));
  return h("article", { class: `ii-card ${mark ? `ii-${mark}` : ""}`, dataset: { index: String(sample.index) } },
    h("header", {},
      h("span", { class: "ii-index" }, `#${sample.index}`),
      h("span", { class: "ii-true" }, `true: ${sample.label ?? "unknown"}`),
      h("span", { class: "ii-pred" }, `predicted: ${top.label} (${(100 * top.score).toFixed(1)}%)`),
      mark && h("span", { class: `ii-badge ii-${mark}` }, mark)),
    h("div", { class: "ii-scores" }, sample.predictions.map(
      (p) => h("span", {}, `${p.label} ${(100 * p.score).toFixed(1)}%`))),
    sample.features.map((f) => featureView(f, view)),
    h("div", { class: "ii-contrib" }, h("div", { class: "ii-feature-name" }, "contributions"),
      sample.features.map((f) => bar(f.name, f.contribution, scale, view,
        `${f.total.toPrecision(3)} (${(100 * f.contribution).toFixed(0)}%)`))));
}

// ------------------------------------------------------------------------------------------ LLM results

/** The rows of one LLM result by "tokens" or, when it knows them, by "words" (llm_view.llm_payload's shape). */
function llmPayload(entry, unit) {
  return unit === "words" && entry.words ? entry.words : entry.tokens;
}

/** One prompt token coloured by its attribution (null: not finite, grey), `scale` being full colour. */
function llmToken(tag, cls, token, value, scale, view) {
  const text = value === null ? "not finite" : value.toPrecision(4);
  const node = h(tag, { class: cls, title: `${token}: ${text}`, dataset: { value: String(value) } }, token);
  if (value === null) node.style.background = "rgb(204,204,204)";
  else {
    const { rgb, alpha } = paint(scale > 0 ? Math.max(-1, Math.min(1, signed(value, view.sign) / scale)) : 0, view);
    node.style.background = `rgba(${rgb.join(",")},${(view.opacity * alpha).toFixed(3)})`;
  }
  return node;
}

/** The largest finite magnitude of one row (1 when there is none), for rows scaled on their own. */
function rowScale(values) {
  return Math.max(0, ...values.filter((v) => v !== null).map(Math.abs)) || 1;
}

/** One LLM result: the target tokens to choose from, the prompt coloured for the chosen one (`row`, 0 = the
 * whole target) and the heat map of all rows, the chosen one outlined; a click on a row chooses it. Colours
 * use the result's shared scale, or each row's own with `perRow`. */
function llmView(entry, { unit, row, perRow }, view, choose) {
  const data = llmPayload(entry, unit);
  const chosen = data.rows[row];
  const scale = (values) => (perRow ? rowScale(values) : data.scale);
  const targets = data.rows.map((r, i) => h("button", { type: "button", name: "llm_pick",
    class: `ii-llm-target${i === row ? " ii-selected" : ""}`, dataset: { row: String(i) },
    onclick: () => choose(i) }, i === 0 ? "whole target" : r.label));
  const strip = (values, cls) => {
    const full = scale(values);
    return values.map((v, j) => llmToken("span", cls, data.inputs[j], v, full, view));
  };
  const matrix = data.rows.length * data.inputs.length > MATRIX_CELLS
    ? h("p", { class: "ii-note" }, `(${data.rows.length} rows of ${data.inputs.length} tokens: too many to draw; `
      + "choose a target token above)")
    : h("table", { class: "ii-llm-matrix" }, h("tbody", {}, data.rows.map((r, i) => h("tr", {
      class: i === row ? "ii-selected" : "", dataset: { row: String(i) }, onclick: () => choose(i),
    }, h("th", { scope: "row" }, i === 0 ? "(whole target)" : r.label),
    h("td", {}, strip(r.values, "ii-token ii-llm-cell"))))));
  return h("article", { class: "ii-llm-result", dataset: { unit } },
    h("header", {}, h("span", { class: "ii-index" }, entry.name), h("span", { class: "ii-note" },
      `target: ${entry.target}`)),
    h("div", { class: "ii-llm-targets" }, h("span", { class: "ii-note" }, "attribution to"), targets),
    h("p", { class: "ii-tokens ii-llm-prompt" }, strip(chosen.values, "ii-token ii-llm-token")),
    h("div", { class: "ii-feature-name" }, `every target ${unit === "words" ? "word" : "token"} (rows) over the `
      + "prompt"), matrix);
}

// ------------------------------------------------------------------------------------------ the app

/** Build the explorer inside `root`, talking to `transport`; returns { destroy, fetch, state }. */
export function mount(root, transport) {
  const state = { config: null, result: null, offset: 0, seq: 0, busy: false,
    view: { cmap: "coolwarm", sign: "all", opacity: 0.7 },
    llm: { index: 0, unit: "tokens", row: 0, perRow: false } };
  const el = {};
  root.classList.add("intellego-insights");
  root.replaceChildren();

  el.error = h("div", { class: "ii-error", role: "alert", hidden: true });
  el.progress = h("progress", { class: "ii-progress", max: 1, value: 0, hidden: true });
  el.phase = h("span", { class: "ii-phase" });
  el.title = h("h1", {}, "intellego insights");
  // noValidate: out-of-range values reach readArgs, which says what is wrong in the error box
  el.controls = h("form", { class: "ii-controls", noValidate: true,
    onsubmit: (e) => { e.preventDefault(); if (hasSamples(state.config)) fetchPage(0); } });
  el.message = h("p", { class: "ii-message" });
  el.grid = h("section", { class: "ii-grid" });
  el.llm = h("section", { class: "ii-llm", hidden: true });
  root.append(h("header", { class: "ii-top" }, el.title, el.progress, el.phase), el.error,
    h("div", { class: "ii-body" }, el.controls, h("main", { class: "ii-main" }, el.llm, el.message, el.grid)));

  function showError(error) {
    el.error.replaceChildren(h("span", {}, error.message || String(error)),
      h("button", { type: "button", class: "ii-dismiss", onclick: () => { el.error.hidden = true; } }, "dismiss"));
    el.error.hidden = false;
  }

  function select(name, options, value, onchange) {
    const node = h("select", { name }, Object.entries(options).map(([key, label]) => h("option", { value: key }, label)));
    if (value !== undefined && value !== null && String(value) in options) node.value = String(value);
    if (onchange) node.addEventListener("change", onchange);
    return node;
  }

  function field(label, input) {
    return h("label", { class: "ii-field" }, h("span", {}, label), input);
  }

  function argInput(arg) {
    if (arg.kind === "bool") return h("input", { type: "checkbox", name: arg.name, checked: arg.default });
    if (arg.kind === "choice") {
      return select(arg.name, Object.fromEntries(arg.choices.map((c) => [c, c])), arg.default);
    }
    const input = h("input", { type: "number", name: arg.name, value: String(arg.default),
      step: arg.kind === "int" ? "1" : "any" });
    if (arg.low !== null) input.min = String(arg.low);
    if (arg.high !== null) input.max = String(arg.high);
    return input;
  }

  function methodSpec() {
    return state.config.methods.find((m) => m.name === el.method.value);
  }

  function renderArgs() {
    const spec = methodSpec();
    el.args.replaceChildren(...(spec ? spec.args.map((a) => field(a.name, argInput(a))) : []));
    if (spec && !spec.args.length) el.args.append(h("p", { class: "ii-note" }, "no arguments"));
    el.summary.textContent = spec ? spec.summary : "";
  }

  /** The arguments as the form holds them, checked against the method's declared ranges. */
  function readArgs() {
    const out = {};
    for (const arg of methodSpec().args) {
      const input = el.args.querySelector(`[name="${arg.name}"]`);
      if (arg.kind === "bool") { out[arg.name] = input.checked; continue; }
      if (arg.kind === "choice") { out[arg.name] = input.value; continue; }
      const value = input.value.trim() === "" ? NaN : Number(input.value);
      const where = `${methodSpec().name}: argument '${arg.name}'`;
      if (!Number.isFinite(value)) throw new Error(`${where} must be a finite number, got '${input.value}'`);
      if (arg.kind === "int" && !Number.isInteger(value)) throw new Error(`${where} must be an integer, got ${value}`);
      if ((arg.low !== null && value < arg.low) || (arg.high !== null && value > arg.high)) {
        throw new Error(`${where} must be between ${arg.low} and ${arg.high}, got ${value}`);
      }
      out[arg.name] = value;
    }
    return out;
  }

  function request(offset) {
    const count = Number(el.count.value);
    const filters = {
      classes: [...el.classes.querySelectorAll("input:checked")].map((c) => c.value),
      prediction: el.prediction.value,
    };
    if (state.config.static) return { run: Number(el.run.value), ...filters, offset, count };
    return {
      model: Number(el.model.value),
      ...filters,
      method: el.method.value,
      arguments: readArgs(),
      offset,
      count,
    };
  }

  function buildControls(cfg) {
    el.title.textContent = cfg.title || "intellego insights";
    const counts = [1, 2, 4, 8, 12, 16, 24, 32].filter((n) => n <= cfg.limits.max_count);
    el.count = select("count", Object.fromEntries(counts.map((n) => [n, String(n)])), String(cfg.defaults.count));
    const parts = [];
    if (!hasSamples(cfg)) {
      // LLM results only: nothing to fetch
    } else if (cfg.static) {
      el.run = select("run", Object.fromEntries(cfg.runs.map((r, i) => [i, r.label])), "0", () => fetchPage(0));
      buildFilters(cfg, () => fetchPage(0));
      parts.push(h("fieldset", {}, h("legend", {}, "Saved runs"), field("run", el.run),
        h("p", { class: "ii-note" }, "A static export: these runs were computed when it was written.")),
      h("fieldset", {}, h("legend", {}, "Filter the saved samples"),
        h("div", { class: "ii-field" }, h("span", {}, "classes (none = all)"), el.classes),
        field("predictions", el.prediction)));
    } else {
      el.model = select("model", Object.fromEntries(cfg.models.map((m, i) => [i, m])), "0");
      buildFilters(cfg);
      el.method = select("method", Object.fromEntries(cfg.methods.map((m) => [m.name, m.name])),
        cfg.defaults.method, renderArgs);
      el.args = h("div", { class: "ii-args" });
      el.summary = h("p", { class: "ii-note" });
      parts.push(
        h("fieldset", {}, h("legend", {}, "Data"), cfg.models.length > 1 ? field("model", el.model) : null,
          h("div", { class: "ii-field" }, h("span", {}, "classes (none = all)"), el.classes),
          field("predictions", el.prediction)),
        h("fieldset", {}, h("legend", {}, "Method"), field("attribution method", el.method), el.summary,
          h("div", { class: "ii-field" }, h("span", {}, "arguments"), el.args)));
    }
    el.fetch = h("button", { type: "submit", class: "ii-primary", name: "fetch" }, cfg.static ? "Show" : "Fetch");
    el.cancel = h("button", { type: "button", name: "cancel", disabled: true,
      onclick: () => transport.cancel() }, "Cancel");
    el.prev = h("button", { type: "button", name: "prev", disabled: true,
      onclick: () => fetchPage(Math.max(0, state.offset - Number(el.count.value))) }, "◀ Prev");
    el.next = h("button", { type: "button", name: "next", disabled: true,
      onclick: () => fetchPage(state.offset + Number(el.count.value)) }, "Next ▶");
    el.legend = h("div", { class: "ii-legend", role: "img", ariaLabel: "colour legend" });
    const redraw = () => {
      Object.assign(state.view, readView());
      drawLegend(el.legend, state.view);
      renderResult();
      renderLlm();
    };
    el.cmap = select("cmap", Object.fromEntries(Object.keys(COLORMAPS).map((k) => [k, k])), state.view.cmap, redraw);
    el.sign = select("sign", SIGNS, state.view.sign, redraw);
    el.opacity = h("input", { type: "range", name: "opacity", min: "0", max: "1", step: "0.05",
      value: String(state.view.opacity), oninput: redraw });
    if (hasSamples(cfg)) {
      parts.push(h("fieldset", {}, h("legend", {}, "Page"), field("samples per page", el.count),
        h("div", { class: "ii-buttons" }, el.fetch, el.cancel), h("div", { class: "ii-buttons" }, el.prev, el.next)));
    }
    if ((cfg.llm || []).length) parts.push(llmControls(cfg));
    parts.push(h("fieldset", {}, h("legend", {}, "Display"), field("colour map", el.cmap), field("sign", el.sign),
      field("overlay opacity", el.opacity), h("div", { class: "ii-field" }, h("span", {}, "legend"), el.legend)));
    el.controls.replaceChildren(...parts);
    drawLegend(el.legend, state.view);
    if (!cfg.static && hasSamples(cfg)) renderArgs();
  }

  /** The class checkboxes and the prediction filter (live in a static export: it filters what it saved). */
  function buildFilters(cfg, onchange) {
    el.classes = h("div", { class: "ii-classes" }, cfg.classes.map((c) => h("label", { class: "ii-check" },
      h("input", { type: "checkbox", name: "class", value: c, ...(onchange ? { onchange } : {}) }), c)));
    el.prediction = select("prediction", Object.fromEntries(cfg.predictions.map((p) => [p, p])), "all", onchange);
  }

  /** The LLM results' choices: which result, tokens or words, which target token (0 = the whole target). */
  function llmControls(cfg) {
    el.llmResult = select("llm_result", Object.fromEntries(cfg.llm.map((e, i) => [i, e.name])), "0", () => {
      Object.assign(state.llm, { index: Number(el.llmResult.value), row: 0 });
      fillLlmChoices();
      renderLlm();
    });
    el.llmUnit = h("select", { name: "llm_unit", onchange: () => {
      Object.assign(state.llm, { unit: el.llmUnit.value, row: 0 });
      fillLlmChoices();
      renderLlm();
    } });
    el.llmTarget = h("select", { name: "llm_target", onchange: () => chooseRow(Number(el.llmTarget.value)) });
    el.llmScale = select("llm_scale", { shared: "shared by all rows", row: "each row its own" }, "shared", () => {
      state.llm.perRow = el.llmScale.value === "row";
      renderLlm();
    });
    fillLlmChoices();
    return h("fieldset", { class: "ii-llm-controls" }, h("legend", {}, "LLM results"),
      field("result", el.llmResult), field("prompt shown by", el.llmUnit), field("target token", el.llmTarget),
      field("colour scale", el.llmScale));
  }

  function fillLlmChoices() {
    const entry = state.config.llm[state.llm.index];
    if (!entry.words) state.llm.unit = "tokens";
    el.llmUnit.replaceChildren(h("option", { value: "tokens" }, "tokens"),
      entry.words ? h("option", { value: "words" }, "words (tokens summed)") : null);
    el.llmUnit.value = state.llm.unit;
    el.llmUnit.disabled = !entry.words;
    const rows = llmPayload(entry, state.llm.unit).rows;
    el.llmTarget.replaceChildren(...rows.map((r, i) => h("option", { value: String(i) },
      i === 0 ? "whole target" : `${i}: ${r.label}`)));
    el.llmTarget.value = String(state.llm.row);
  }

  function chooseRow(row) {
    state.llm.row = row;
    el.llmTarget.value = String(row);
    renderLlm();
  }

  function renderLlm() {
    const entries = (state.config && state.config.llm) || [];
    el.llm.hidden = entries.length === 0;
    if (!entries.length) return;
    el.llm.replaceChildren(llmView(entries[state.llm.index], state.llm, state.view, chooseRow));
  }

  function readView() {
    return { cmap: el.cmap.value, sign: el.sign.value, opacity: Number(el.opacity.value) };
  }

  function renderResult() {
    const result = state.result;
    if (!result) return;
    el.grid.replaceChildren(...result.samples.map((s) => sampleCard(s, state.view)));
    const shown = result.samples.length
      ? `samples ${result.offset + 1}–${result.offset + result.samples.length} of those matching` : "";
    const args = Object.entries(result.arguments || {}).map(([k, v]) => `${k}=${v}`).join(", ");
    el.message.textContent = [`${result.method}(${args})`, shown, result.message].filter(Boolean).join(" · ");
  }

  function setBusy(busy) {
    state.busy = busy;
    el.fetch.disabled = busy;
    el.cancel.disabled = !busy;
    el.progress.hidden = !busy;
    if (busy) { el.progress.removeAttribute("value"); el.phase.textContent = "working…"; }
    root.classList.toggle("ii-busy", busy);
  }

  async function fetchPage(offset) {
    let req;
    try { req = request(offset); } catch (error) { showError(error); return; }
    if (state.busy) transport.cancel();
    const seq = ++state.seq;
    el.error.hidden = true;
    setBusy(true);
    try {
      const result = await transport.run(req, (job) => {
        if (seq !== state.seq) return;
        if (job.total > 0) el.progress.value = job.done / job.total;
        el.phase.textContent = job.phase || "";
      });
      if (seq !== state.seq) return;
      state.result = result;
      state.offset = offset;
      el.prev.disabled = offset === 0;
      el.next.disabled = !result.has_more;
      renderResult();
      el.phase.textContent = "";
    } catch (error) {
      if (seq === state.seq && error.cancelled) {
        el.phase.textContent = "cancelled";
        el.message.textContent = state.result ? "Cancelled: the results below are from the previous request."
          : "Cancelled.";
      } else if (seq === state.seq) { showError(error); el.phase.textContent = ""; }
    } finally {
      if (seq === state.seq) setBusy(false);
    }
  }

  let alive = true;
  transport.config().then((cfg) => {
    if (!alive) return;
    state.config = cfg;
    buildControls(cfg);
    renderLlm();
    if (hasSamples(cfg)) fetchPage(0);
  }).catch((error) => showError(error));

  return {
    state,
    fetch: fetchPage,
    destroy() { alive = false; transport.cancel(); root.replaceChildren(); },
  };
}
