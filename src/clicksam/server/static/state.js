// The page's state, shared by its modules, and the rules that read it (colours, visibility).

export const $ = (id) => document.getElementById(id);

export const state = {
  info: null,
  images: [], // [{name, status (encoding), objects, review}]
  reviews: {}, // review state -> count
  filter: "all", // review state shown in the image list, or "all"
  current: null, // image name
  status: "new", // encoding status of the current image
  failure: "", // why the current image cannot be opened, or ""
  review: "todo",
  width: 0,
  height: 0,
  objects: [], // object views from the server, in list order
  selected: null, // object id
  classes: [], // [{id, name, colour, images}]
  currentClass: null, // class id given to new objects
  canUndo: false,
  canRedo: false,
  tool: "click", // click | brush | eraser
  radius: 4, // brush radius in image pixels
  colourBy: "class", // class | object
  pending: 0,
  latencies: [],
};

export const REVIEW_NAMES = { todo: "to do", in_progress: "in progress", done: "done", needs_review: "needs review" };

const OBJECT_PALETTE = [
  [30, 144, 255], [255, 99, 71], [60, 179, 113], [238, 130, 238], [255, 165, 0],
  [0, 206, 209], [255, 215, 0], [147, 112, 219], [205, 92, 92], [154, 205, 50],
];

export function message(text, error = false) {
  $("message").textContent = text;
  $("message").className = error ? "error" : "";
}

export function selectedObject() {
  return state.objects.find((o) => o.id === state.selected) || null;
}

export function classById(id) {
  return state.classes.find((c) => c.id === id) || null;
}

function hexToRgb(hex) {
  const value = parseInt(hex.slice(1), 16);
  return [(value >> 16) & 255, (value >> 8) & 255, value & 255];
}

/** RGB colour of an object: its class's colour, or one per object id. */
export function colourOf(obj) {
  const cls = classById(obj.class);
  if (state.colourBy === "class" && cls) return hexToRgb(cls.colour);
  return OBJECT_PALETTE[(obj.id - 1) % OBJECT_PALETTE.length];
}

/** Whether an object is drawn: when some object is solo only the solo ones are, else the unhidden ones. */
export function isVisible(obj) {
  const anySolo = state.objects.some((o) => o.solo);
  return anySolo ? obj.solo : !obj.hidden;
}
