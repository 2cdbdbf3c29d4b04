// The annotator's JSON API, with the write token and one request at a time for changes.

const params = new URLSearchParams(location.search);
if (params.get("token")) sessionStorage.setItem("clicksam-token", params.get("token"));
const token = () => sessionStorage.getItem("clicksam-token");

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

async function request(method, path, body) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && token()) headers["X-Clicksam-Token"] = token();
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  let data = null;
  try { data = await response.json(); } catch (_) { data = null; }
  if (!response.ok) throw new ApiError(response.status, (data && data.detail) || response.statusText);
  return data;
}

let chain = Promise.resolve();
/** Run changes one after the other, in the order the user made them. */
function serial(fn) {
  const next = chain.then(fn, fn);
  chain = next.catch(() => undefined);
  return next;
}

const q = (name) => encodeURIComponent(name);

export const api = {
  info: () => request("GET", "/api/info"),
  images: () => request("GET", "/api/images"),
  annotation: (image) => request("GET", `/api/annotation?name=${q(image)}`),
  /** The display copy; `version` (from the annotation) lets the browser keep it. */
  imageUrl: (image, version) => `/api/image?name=${q(image)}&v=${q(version)}`,
  tileUrl: (image, version, level, col, row) => `/api/tile?name=${q(image)}&v=${q(version)}&level=${level}&col=${col}&row=${row}`,
  /** An export file: {blob, skipped (corrupt annotation files left out)}. */
  exportFile: async (path) => {
    const response = await fetch(path);
    if (!response.ok) {
      let detail = response.statusText;
      try { detail = (await response.json()).detail || detail; } catch (_) { /* not JSON */ }
      throw new ApiError(response.status, detail);
    }
    return { blob: await response.blob(), skipped: Number(response.headers.get("X-Clicksam-Skipped") || 0) };
  },
  open: (image) => request("POST", "/api/open", { image }),
  review: (image, review) => serial(() => request("POST", "/api/review", { image, review })),
  newObject: (image, classId, method) => serial(() => request("POST", "/api/objects", { image, class: classId ?? undefined, method })),
  updateObject: (image, object, change) => serial(() => request("PATCH", "/api/objects", { image, object, ...change })),
  deleteObject: (image, object) => serial(() => request("DELETE", `/api/objects?image=${q(image)}&object=${object}`)),
  click: (image, object, x, y, positive) => serial(() => request("POST", "/api/click", { image, object, x, y, positive })),
  box: (image, object, box) => serial(() => request("POST", "/api/box", { image, object, x0: box[0], y0: box[1], x1: box[2], y1: box[3] })),
  stroke: (image, object, mode, radius, points) => serial(() => request("POST", "/api/stroke", { image, object, mode, radius, points })),
  reset: (image, object) => serial(() => request("POST", "/api/reset", { image, object })),
  /** Undo or redo the image's last step. */
  history: (action, image) => serial(() => request("POST", `/api/${action}`, { image })),
  classes: () => request("GET", "/api/classes"),
  addClass: (name) => serial(() => request("POST", "/api/classes", { name })),
  updateClass: (id, change) => serial(() => request("PATCH", "/api/classes", { id, ...change })),
  removeClass: (id) => serial(() => request("DELETE", `/api/classes?id=${id}`)),
};
