// The annotator page: images and review status, objects, prompts and strokes, image-level
// undo/redo, classes, display options, zoom and pan, keyboard shortcuts.
import { api } from "./api.js";
import { loadClasses, wireClassForm } from "./classes.js";
import { wireExports } from "./exports.js";
import { listedImages, nextToDo, noteReview, renderImages } from "./images.js";
import { renderObjects, renderSelected } from "./objects.js";
import { wirePointer } from "./pointer.js";
import { $, REVIEW_NAMES, colourOf, isVisible, message, selectedObject, state } from "./state.js";
import { View } from "./view.js";

const view = new View($("view"));
view.onTile = () => redraw();
let revision = 0; // stamps every object view received, so the mask layers know what changed
let frame = 0;

// ---------------------------------------------------------------- drawing
function render() {
  const shown = state.objects.filter(isVisible);
  const key = shown.map((o) => `${o.id}.${o.rev}.${colourOf(o).join()}`).join("|") + `|${state.selected}`;
  view.draw(shown, state.selected, colourOf, key);
  $("undo").disabled = !state.canUndo;
  $("redo").disabled = !state.canRedo;
  const obj = selectedObject();
  $("delete").disabled = !obj || obj.locked;
  $("zoom-value").textContent = `${Math.round(view.viewport.scale * 100)}%`;
}

const redraw = () => { if (!frame) frame = requestAnimationFrame(() => { frame = 0; render(); }); };

const objectHandlers = {
  select: (id) => { state.selected = id; renderAll(); },
  update: (id, changeSet) => change(() => api.updateObject(state.current, id, changeSet)),
  remove: (id) => deleteObject(id),
};

function renderAll() {
  renderObjects(objectHandlers);
  renderSelected(objectHandlers);
  render();
}

const imageHandlers = {
  open: (name) => openImage(name),
  filter: (value) => { state.filter = value; renderImages(imageHandlers); },
};

// ---------------------------------------------------------------- images and progress
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
  if (waiting) $("banner").textContent = `Encoding this image (${state.status})… clicks wait for it; the brush works now`;
  if (state.status === "failed") message(state.failure || "encoding this image failed; open it again to retry", true);
}

async function poll() {
  try {
    const data = await api.images();
    state.images = data.images;
    state.reviews = data.reviews;
    renderImages(imageHandlers);
    renderProgress(data.progress);
    const classes = (await api.classes()).classes;
    if (JSON.stringify(classes) !== JSON.stringify(state.classes)) await loadClasses(renderAll);
  } catch (err) {
    $("progress-text").textContent = `server unreachable (${err.message})`;
  }
  setTimeout(poll, state.images.some((i) => ["queued", "encoding"].includes(i.status)) ? 700 : 2000);
}

function takeImageState(s) {
  state.canUndo = s.can_undo;
  state.canRedo = s.can_redo;
  state.review = s.review;
  $("review").value = s.review;
  noteReview(s.review);
  renderImages(imageHandlers);
}

async function openImage(name) {
  if (!name) return;
  state.current = name;
  history.replaceState(null, "", `${location.pathname}${location.search}#image=${encodeURIComponent(name)}`);
  $("image-name").textContent = name;
  // nothing of the previous image stays on screen while this one loads, or if it cannot be read
  Object.assign(state, { objects: [], selected: null, canUndo: false, canRedo: false, failure: "" });
  view.setImage(null);
  renderImages(imageHandlers);
  renderAll();
  api.open(name).catch((err) => failed(name, err.message));
  let annotation;
  let img;
  try {
    annotation = await api.annotation(name);
    img = await loadImage(api.imageUrl(name, annotation.version));
  } catch (err) {
    failed(name, err.message);
    return;
  }
  if (state.current !== name) return; // the user moved on meanwhile
  state.width = annotation.width;
  state.height = annotation.height;
  state.status = annotation.status;
  state.objects = annotation.objects.map((o) => ({ ...o, rev: ++revision }));
  state.selected = state.objects.length ? state.objects[state.objects.length - 1].id : null;
  takeImageState(annotation);
  const tiles = { ...annotation.tiles, url: (level, col, row) => api.tileUrl(name, annotation.version, level, col, row) };
  view.setImage(img, annotation.width, annotation.height, tiles);
  renderAll();
  if (!state.pending) $("save-state").textContent = "all changes saved";
  message(state.objects.length ? `${state.objects.length} object(s) restored` : "click on an object to segment it");
}

/** An image that cannot be opened: the canvas and the object list stay empty, the list marks it. */
function failed(name, reason) {
  if (state.current !== name) return;
  const image = state.images.find((i) => i.name === name);
  if (image) image.status = "failed";
  state.status = "failed";
  state.failure = `cannot open ${name}: ${reason}`;
  renderImages(imageHandlers);
  message(state.failure, true);
}

function loadImage(url) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error("the browser cannot show the image"));
    img.src = url;
  });
}

function nextImage(step) {
  const names = listedImages().map((i) => i.name);
  const i = names.indexOf(state.current);
  const target = i < 0 ? names[0] : names[Math.min(Math.max(i + step, 0), names.length - 1)];
  if (target && target !== state.current) openImage(target);
}

async function setReview(review) {
  const image = state.current;
  const answer = await change(() => api.review(image, review), image);
  return answer !== null;
}

async function doneAndNext() {
  if (!state.current || !(await setReview("done"))) return;
  const next = nextToDo();
  if (next) openImage(next);
  else message("no image left to do");
}

// ---------------------------------------------------------------- changes
/** Take a server answer: an object view (maybe deleted), and the image's history and review state. */
function take(answer) {
  if (answer.image_state) takeImageState(answer.image_state);
  if (answer.id === undefined) return;
  const i = state.objects.findIndex((o) => o.id === answer.id);
  if (answer.deleted) {
    if (i >= 0) state.objects.splice(i, 1);
    if (state.selected === answer.id) state.selected = state.objects.length ? state.objects[state.objects.length - 1].id : null;
    return;
  }
  const updated = { ...answer, rev: ++revision };
  if (i >= 0) state.objects[i] = updated;
  else state.objects.splice(answer.index >= 0 ? answer.index : state.objects.length, 0, updated);
}

/** Send one change, show its latency, and redraw with the server's answer (null on an error). */
async function change(send, image = state.current) {
  state.pending += 1;
  $("save-state").textContent = "saving…";
  const started = performance.now();
  try {
    const answer = await send();
    if (image !== state.current) return answer;
    take(answer);
    if (answer.class !== undefined && !state.classes.some((c) => c.id === answer.class)) await loadClasses(renderAll);
    if (answer.latency_ms !== undefined) {
      const total = performance.now() - started;
      state.latencies = [...state.latencies.slice(-19), answer.latency_ms];
      const mean = state.latencies.reduce((a, b) => a + b, 0) / state.latencies.length;
      $("latency").textContent = `latency: ${answer.latency_ms.toFixed(0)} ms server · ${total.toFixed(0)} ms total · mean ${mean.toFixed(0)} ms`;
    }
    message("");
    return answer;
  } catch (err) {
    message(err.message, true);
    return null;
  } finally {
    state.pending -= 1;
    $("save-state").textContent = state.pending ? "saving…" : "all changes saved";
    renderAll();
  }
}

let creating = null; // a new object on its way: prompts made meanwhile go to it
async function newObject() {
  if (!state.current) return null;
  const image = state.current;
  creating = change(() => api.newObject(image, state.currentClass, state.info.default_method), image);
  const created = await creating;
  creating = null;
  if (created && image === state.current) { state.selected = created.id; renderAll(); }
  return created;
}

function deleteObject(id) {
  const obj = state.objects.find((o) => o.id === id);
  if (!obj) return;
  if (obj.locked) { message(`object #${id} is locked; unlock it (L) to delete it`, true); return; }
  const image = state.current;
  change(() => api.deleteObject(image, id), image).then((answer) => {
    if (answer) message(`deleted object #${id}; Ctrl+Z brings it back`);
  });
}

/** Why the object cannot take prompts or strokes now, or "" when it can. */
function refusal(obj) {
  if (obj.locked) return `object #${obj.id} is locked; unlock it (L) or press N for a new object`;
  if (!isVisible(obj)) return `object #${obj.id} is hidden; show it (H) or press N for a new object`;
  return "";
}

async function targetObject() {
  if (creating) return ((await creating) || {}).id;
  const obj = selectedObject();
  if (!obj) return ((await newObject()) || {}).id;
  const why = refusal(obj);
  if (why) { message(why, true); return undefined; }
  return obj.id;
}

async function prompt(send) {
  const image = state.current;
  const id = await targetObject();
  if (id !== undefined && image === state.current) await change(() => send(image, id), image);
}

const stroke = {
  begin(s) {
    const obj = selectedObject();
    const why = obj && !creating ? refusal(obj) : "";
    if (why) { message(why, true); return false; }
    s.object = obj;
    return true;
  },
  end(s) {
    prompt((image, id) => api.stroke(image, id, s.mode, s.radius, s.points));
  },
};

async function historyStep(action) {
  if (!state.current) return;
  const answer = await change(() => api.history(action, state.current));
  if (answer && answer.id !== undefined && !answer.deleted) { state.selected = answer.id; renderAll(); }
}

function toggleFlag(flag) {
  const obj = selectedObject();
  if (obj) objectHandlers.update(obj.id, { [flag]: !obj[flag] });
}

function cycleObject(step) {
  if (!state.objects.length) return;
  const i = state.objects.findIndex((o) => o.id === state.selected);
  const next = (i + step + state.objects.length) % state.objects.length;
  objectHandlers.select(state.objects[i < 0 ? 0 : next].id);
}

function chooseClass(index) {
  const cls = state.classes[index];
  if (!cls) return;
  state.currentClass = cls.id;
  const obj = selectedObject();
  if (obj && obj.class !== cls.id) objectHandlers.update(obj.id, { class: cls.id });
  else renderAll();
  message(`class: ${cls.name}`);
}

// ---------------------------------------------------------------- tools, display, keyboard
function setTool(tool) {
  state.tool = tool;
  for (const button of document.querySelectorAll("[data-tool]")) button.setAttribute("aria-pressed", String(button.dataset.tool === tool));
  pointer.updateCursor();
  view.cursor = null;
  render();
}

function setRadius(value) {
  const { min_radius: lo, max_radius: hi } = state.info.brush;
  state.radius = Math.min(Math.max(Math.round(value * 2) / 2, lo), hi);
  $("radius").value = state.radius;
  $("radius-value").textContent = state.radius;
  view.cursorRadius = state.radius;
  redraw();
}

function setOpacity(percent) {
  const value = Math.min(100, Math.max(0, percent));
  $("opacity").value = value;
  $("opacity-value").textContent = `${value}%`;
  view.opacity = value / 100;
  render();
}

const pointer = wirePointer(view, {
  tool: () => state.tool,
  radius: () => state.radius,
  maxPoints: 2000,
  click: (x, y, positive) => prompt((image, id) => api.click(image, id, x, y, positive)),
  box: (box) => prompt((image, id) => api.box(image, id, box)),
  stroke,
  redraw,
});

const KEYS = {
  n: newObject, a: () => nextImage(-1), d: () => nextImage(1),
  o: () => { $("outline").checked = !$("outline").checked; view.outline = $("outline").checked; render(); },
  "+": () => setOpacity(Number($("opacity").value) + 10), "=": () => setOpacity(Number($("opacity").value) + 10),
  "-": () => setOpacity(Number($("opacity").value) - 10),
  v: () => setTool("click"), b: () => setTool("brush"), e: () => setTool("eraser"),
  "[": () => setRadius(state.radius / 1.25), "]": () => setRadius(state.radius * 1.25),
  f: () => { view.fit(); render(); },
  h: () => toggleFlag("hidden"), l: () => toggleFlag("locked"), s: () => toggleFlag("solo"),
  delete: () => state.selected !== null && deleteObject(state.selected),
  backspace: () => state.selected !== null && deleteObject(state.selected),
  enter: doneAndNext,
};

window.addEventListener("keydown", (e) => {
  const active = document.activeElement;
  const typing = ["INPUT", "SELECT", "TEXTAREA"].includes(active.tagName) &&
    !["range", "checkbox", "color"].includes(active.type);
  const key = e.key.toLowerCase();
  if ((e.ctrlKey || e.metaKey) && (key === "z" || key === "y")) {
    if (typing) return; // let text fields undo their own typing
    e.preventDefault();
    historyStep(key === "y" || e.shiftKey ? "redo" : "undo");
    return;
  }
  if (typing || e.ctrlKey || e.metaKey || e.altKey || e.repeat && key === "enter") return;
  if (key === "enter" && active.tagName === "BUTTON") return; // the button takes it
  if (key === "tab") cycleObject(e.shiftKey ? -1 : 1);
  else if (/^[0-9]$/.test(key)) chooseClass((Number(key) + 9) % 10);
  else if (KEYS[key]) KEYS[key]();
  else return;
  e.preventDefault();
});

// buttons do not keep the focus after a mouse click, so Enter and Space stay shortcuts
document.addEventListener("mousedown", (e) => { if (e.target.closest("button")) e.preventDefault(); });
for (const button of document.querySelectorAll("[data-tool]")) button.addEventListener("click", () => setTool(button.dataset.tool));
$("radius").addEventListener("input", () => setRadius(Number($("radius").value)));
$("fit").addEventListener("click", KEYS.f);
$("review").addEventListener("change", () => setReview($("review").value));
$("done-next").addEventListener("click", doneAndNext);
$("new-object").addEventListener("click", newObject);
$("undo").addEventListener("click", () => historyStep("undo"));
$("redo").addEventListener("click", () => historyStep("redo"));
$("reset").addEventListener("click", () => {
  const obj = selectedObject();
  if (obj) change(() => api.reset(state.current, obj.id)).then((a) => a && message(`object #${obj.id} cleared; Ctrl+Z brings it back`));
});
$("delete").addEventListener("click", KEYS.delete);
wireExports();
$("opacity").addEventListener("input", () => setOpacity(Number($("opacity").value)));
$("outline").addEventListener("change", () => { view.outline = $("outline").checked; render(); });
$("show-prompts").addEventListener("change", () => { view.showPrompts = $("show-prompts").checked; render(); });
$("colour-by").addEventListener("change", () => { state.colourBy = $("colour-by").value; renderAll(); });
new ResizeObserver(() => { view.resize(); render(); }).observe($("stage"));
wireClassForm(renderAll);

async function init() {
  state.info = await api.info();
  $("model").textContent = `model ${state.info.model}` + (state.info.random_weights ? " (random weights: masks are meaningless)" : "");
  $("model").classList.toggle("warn", Boolean(state.info.random_weights));
  $("review").replaceChildren(...state.info.review_states.map((value) => new Option(REVIEW_NAMES[value], value)));
  setTool("click");
  setRadius(state.radius);
  await loadClasses(renderAll);
  const data = await api.images();
  state.images = data.images;
  state.reviews = data.reviews;
  renderImages(imageHandlers);
  renderProgress(data.progress);
  const fromHash = decodeURIComponent((location.hash.match(/image=([^&]+)/) || [])[1] || "");
  const names = state.images.map((i) => i.name);
  await openImage(names.includes(fromHash) ? fromHash : names[0]);
  if (!names.length) message("no images in the served folder", true);
  document.body.dataset.ready = "1";
  poll();
}

init().catch((err) => message(`cannot start: ${err.message}`, true));
