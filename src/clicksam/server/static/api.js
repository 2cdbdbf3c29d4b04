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
  progress: () => request("GET", "/api/progress"),
  annotation: (image) => request("GET", `/api/annotation?name=${q(image)}`),
  imageUrl: (image) => `/api/image?name=${q(image)}`,
  open: (image) => request("POST", "/api/open", { image }),
  newObject: (image, label, method) => serial(() => request("POST", "/api/objects", { image, label, method })),
  updateObject: (image, object, change) => serial(() => request("PATCH", "/api/objects", { image, object, ...change })),
  deleteObject: (image, object) => serial(() => request("DELETE", `/api/objects?image=${q(image)}&object=${object}`)),
  click: (image, object, x, y, positive) => serial(() => request("POST", "/api/click", { image, object, x, y, positive })),
  box: (image, object, box) => serial(() => request("POST", "/api/box", { image, object, x0: box[0], y0: box[1], x1: box[2], y1: box[3] })),
  history: (action, image, object) => serial(() => request("POST", `/api/${action}`, { image, object })),
};
