// The annotator page: image list, objects, prompts, undo/redo, display options, shortcuts.
import { api } from "./api.js";
import { View, objectColour } from "./view.js";

const $ = (id) => document.getElementById(id);
const view = new View($("view"));
const state = {
  info: null, images: [], current: null, status: "new", width: 0, height: 0,
  objects: [], selected: null, pending: 0, latencies: [],
};
const DRAG_PIXELS = 5; // screen pixels a press must move to become a box

function message(text, error = false) {
  $("message").textContent = text;
  $("message").className = error ? "error" : "";
}

function selectedObject() {
  return state.objects.find((o) => o.id === state.selected) || null;
}

function render() {
  view.draw(state.objects, state.selected);
  const obj = selectedObject();
  $("undo").disabled = !obj || !obj.can_undo;
  $("redo").disabled = !obj || !obj.can_redo;
  $("reset").disabled = !obj || (!obj.can_undo && !obj.can_redo);
}

function fit() {
  const stage = $("stage");
  if (!state.width) return;
  const k = Math.min(stage.clientWidth / state.width, stage.clientHeight / state.height);
  $("view").style.width = `${Math.floor(state.width * k)}px`;
  $("view").style.height = `${Math.floor(state.height * k)}px`;
  render();
}

// ---------------------------------------------------------------- images and progress
function renderImages() {
  const list = $("images");
  list.replaceChildren(...state.images.map((img) => {
    const li = document.createElement("li");
    li.dataset.name = img.name;
    li.className = img.name === state.current ? "current" : "";
    const dot = document.createElement("span");
    dot.className = `dot ${img.status}`;
    dot.title = img.status;
    const name = document.createElement("span");
    name.textContent = img.name;
    const count = document.createElement("span");
    count.className = "count";
    count.textContent = img.objects ? `${img.objects} obj` : "";
    li.append(dot, name, count);
    li.addEventListener("click", () => openImage(img.name));
    return li;
  }));
}

function renderProgress(progress) {
  const done = progress.encoded;
  $("progress-fill").style.width = `${progress.total ? (100 * done) / progress.total : 0}%`;
  const parts = [`${done}/${progress.total} encoded`];
  if (progress.encoding) parts.unshift(`encoding ${progress.encoding} (${progress.encoding_s.toFixed(1)} s)`);
  if (progress.queued) parts.push(`${progress.queued} queued`);
  if (progress.failed) parts.push(`${progress.failed} failed`);
  $("progress-text").textContent = parts.join(" · ");
  const current = state.images.find((i) => i.name === state.current);
  state.status = current ? current.status : state.status;
  const waiting = ["new", "queued", "encoding"].includes(state.status);
  $("banner").hidden = !waiting;
  if (waiting) $("banner").textContent = `Encoding this image (${state.status})… clicks wait for it`;
  if (state.status === "failed") message("encoding this image failed; open it again to retry", true);
}

async function poll() {
  try {
    const data = await api.images();
    state.images = data.images;
    renderImages();
    renderProgress(data.progress);
  } catch (err) {
    $("progress-text").textContent = `server unreachable (${err.message})`;
  }
  setTimeout(poll, state.images.some((i) => ["queued", "encoding"].includes(i.status)) ? 700 : 2000);
}

async function openImage(name) {
  if (!name) return;
  state.current = name;
  history.replaceState(null, "", `${location.pathname}${location.search}#image=${encodeURIComponent(name)}`);
  $("image-name").textContent = name;
  renderImages();
  api.open(name).catch((err) => message(err.message, true));
  const [annotation, img] = await Promise.all([api.annotation(name), loadImage(api.imageUrl(name))]);
  if (state.current !== name) return; // the user moved on meanwhile
  state.width = annotation.width;
  state.height = annotation.height;
  state.status = annotation.status;
  state.objects = annotation.objects;
  state.selected = state.objects.length ? state.objects[state.objects.length - 1].id : null;
  view.setImage(img);
  renderObjects();
  fit();
  if (!state.pending) $("save-state").textContent = "all changes saved";
  message(state.objects.length ? `${state.objects.length} object(s) restored` : "click on an object to segment it");
}

function loadImage(url) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error(`cannot load ${url}`));
    img.src = url;
  });
}

// ---------------------------------------------------------------- objects
function methodSelect(obj) {
  const select = document.createElement("select");
  select.title = "method of this object";
  for (const m of state.info.methods) {
    const option = document.createElement("option");
    option.value = m.name;
    option.disabled = !m.available;
    option.textContent = m.available ? m.name : `${m.name} (unavailable)`;
    if (!m.available) option.title = m.reason;
    option.selected = m.name === obj.method;
    select.append(option);
  }
  select.addEventListener("change", () => change(() => api.updateObject(state.current, obj.id, { method: select.value })));
  return select;
}

function renderObjects() {
  $("objects").replaceChildren(...state.objects.map((obj, index) => {
    const li = document.createElement("li");
    li.dataset.id = obj.id;
    li.className = obj.id === state.selected ? "selected" : "";
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = `rgb(${objectColour(obj.id).join(",")})`;
    const label = document.createElement("input");
    label.value = obj.label;
    label.title = `label of object ${index + 1}`;
    label.addEventListener("change", () => change(() => api.updateObject(state.current, obj.id, { label: label.value })));
    const remove = document.createElement("button");
    remove.className = "delete";
    remove.title = "delete this object";
    remove.textContent = "×";
    remove.addEventListener("click", (e) => { e.stopPropagation(); deleteObject(obj.id); });
    const meta = document.createElement("span");
    meta.className = "meta";
    const negatives = obj.clicks.filter((c) => !c[2]).length;
    meta.textContent = `${index + 1} · ${obj.clicks.length} click(s), ${negatives} negative${obj.box ? ", box" : ""}` +
      ` · ${obj.area} px${obj.score == null ? "" : ` · score ${obj.score.toFixed(2)}`}`;
    li.append(swatch, label, remove, methodSelect(obj), meta);
    li.addEventListener("click", () => { state.selected = obj.id; renderObjects(); render(); });
    return li;
  }));
}

function replaceObject(updated) {
  const i = state.objects.findIndex((o) => o.id === updated.id);
  if (i >= 0) state.objects[i] = updated; else state.objects.push(updated);
}

/** Send one change, show its latency, and redraw with the server's answer. */
async function change(send, image = state.current) {
  state.pending += 1;
  $("save-state").textContent = "saving…";
  const started = performance.now();
  try {
    const updated = await send();
    if (image !== state.current) return null;
    if (updated && updated.id !== undefined) replaceObject(updated);
    if (updated && updated.latency_ms !== undefined) {
      const total = performance.now() - started;
      state.latencies = [...state.latencies.slice(-19), updated.latency_ms];
      const mean = state.latencies.reduce((a, b) => a + b, 0) / state.latencies.length;
      $("latency").textContent = `latency: ${updated.latency_ms.toFixed(0)} ms server · ${total.toFixed(0)} ms total · mean ${mean.toFixed(0)} ms`;
    }
    message("");
    return updated;
  } catch (err) {
    message(err.message, true);
    return null;
  } finally {
    state.pending -= 1;
    $("save-state").textContent = state.pending ? "saving…" : "all changes saved";
    renderObjects();
    render();
  }
}

async function newObject() {
  if (!state.current) return null;
  const image = state.current;
  const created = await change(() => api.newObject(image, "object", state.info.default_method));
  if (created) { state.selected = created.id; renderObjects(); render(); }
  return created;
}

async function deleteObject(id) {
  const image = state.current;
  await change(() => api.deleteObject(image, id));
  if (image !== state.current) return;
  state.objects = state.objects.filter((o) => o.id !== id);
  if (state.selected === id) state.selected = state.objects.length ? state.objects[state.objects.length - 1].id : null;
  renderObjects();
  render();
}

async function targetObject() {
  const obj = selectedObject();
  return obj ? obj.id : (await newObject() || {}).id;
}

async function sendClick(x, y, positive) {
  const image = state.current;
  const id = await targetObject();
  if (id === undefined) return;
  await change(() => api.click(image, id, x, y, positive), image);
}

async function sendBox(box) {
  const image = state.current;
  const id = await targetObject();
  if (id === undefined) return;
  await change(() => api.box(image, id, box), image);
}

async function historyStep(action) {
  const obj = selectedObject();
  if (!obj) return;
  await change(() => api.history(action, state.current, obj.id));
}

// ---------------------------------------------------------------- mouse and keyboard
let press = null;
const canvas = $("view");
canvas.addEventListener("contextmenu", (e) => e.preventDefault());
canvas.addEventListener("mousedown", (e) => {
  const at = view.toImage(e);
  if (!at || !state.current) return;
  press = { at, button: e.button, shift: e.shiftKey, sx: e.clientX, sy: e.clientY, dragging: false };
});
window.addEventListener("mousemove", (e) => {
  if (!press || press.button !== 0) return;
  if (!press.dragging && Math.hypot(e.clientX - press.sx, e.clientY - press.sy) < DRAG_PIXELS) return;
  press.dragging = true;
  const rect = canvas.getBoundingClientRect();
  const x = Math.min(Math.max((e.clientX - rect.left) * canvas.width / rect.width, 0), canvas.width - 1);
  const y = Math.min(Math.max((e.clientY - rect.top) * canvas.height / rect.height, 0), canvas.height - 1);
  view.drag = { x0: press.at.x, y0: press.at.y, x1: Math.floor(x), y1: Math.floor(y) };
  render();
});
window.addEventListener("mouseup", (e) => {
  if (!press) return;
  const done = press;
  press = null;
  if (done.dragging) {
    const { x0, y0, x1, y1 } = view.drag;
    view.drag = null;
    render();
    if (Math.abs(x1 - x0) >= 1 && Math.abs(y1 - y0) >= 1) sendBox([x0, y0, x1, y1]);
    return;
  }
  if (e.target !== canvas) return;
  const positive = done.button === 0 && !done.shift && !e.shiftKey;
  if (done.button === 0 || done.button === 2) sendClick(done.at.x, done.at.y, positive);
});

function nextImage(step) {
  const names = state.images.map((i) => i.name);
  const i = names.indexOf(state.current);
  const target = names[Math.min(Math.max(i + step, 0), names.length - 1)];
  if (target && target !== state.current) openImage(target);
}

function setOpacity(percent) {
  const value = Math.min(100, Math.max(0, percent));
  $("opacity").value = value;
  $("opacity-value").textContent = `${value}%`;
  view.opacity = value / 100;
  render();
}

window.addEventListener("keydown", (e) => {
  const typing = ["INPUT", "SELECT", "TEXTAREA"].includes(document.activeElement.tagName) &&
    document.activeElement.type !== "range" && document.activeElement.type !== "checkbox";
  const key = e.key.toLowerCase();
  if ((e.ctrlKey || e.metaKey) && (key === "z" || key === "y")) {
    if (typing) return; // let text fields undo their own typing
    e.preventDefault();
    historyStep(key === "y" || e.shiftKey ? "redo" : "undo");
    return;
  }
  if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
  if (key === "escape" && press) { press = null; view.drag = null; render(); }
  else if (key === "n") newObject();
  else if (key === "delete" || key === "backspace") { if (state.selected !== null) deleteObject(state.selected); }
  else if (key === "a") nextImage(-1);
  else if (key === "d") nextImage(1);
  else if (key === "o") { $("outline").checked = !$("outline").checked; view.outline = $("outline").checked; render(); }
  else if (key === "+" || key === "=") setOpacity(Number($("opacity").value) + 10);
  else if (key === "-") setOpacity(Number($("opacity").value) - 10);
  else if (/^[1-9]$/.test(key) && state.objects[Number(key) - 1]) {
    state.selected = state.objects[Number(key) - 1].id; renderObjects(); render();
  } else return;
  e.preventDefault();
});

$("new-object").addEventListener("click", newObject);
$("undo").addEventListener("click", () => historyStep("undo"));
$("redo").addEventListener("click", () => historyStep("redo"));
$("reset").addEventListener("click", () => historyStep("reset"));
$("opacity").addEventListener("input", () => setOpacity(Number($("opacity").value)));
$("outline").addEventListener("change", () => { view.outline = $("outline").checked; render(); });
$("show-prompts").addEventListener("change", () => { view.showPrompts = $("show-prompts").checked; render(); });
window.addEventListener("resize", fit);

async function init() {
  state.info = await api.info();
  $("model").textContent = `model ${state.info.model}`;
  const data = await api.images();
  state.images = data.images;
  renderImages();
  renderProgress(data.progress);
  const fromHash = decodeURIComponent((location.hash.match(/image=([^&]+)/) || [])[1] || "");
  const names = state.images.map((i) => i.name);
  await openImage(names.includes(fromHash) ? fromHash : names[0]);
  if (!names.length) message("no images in the served folder", true);
  document.body.dataset.ready = "1";
  poll();
}

init().catch((err) => message(`cannot start: ${err.message}`, true));
