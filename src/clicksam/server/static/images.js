// The image list: encoding dot, name, review badge, object count; review counts as filter chips.
import { $, REVIEW_NAMES, state } from "./state.js";

/** The images the filter shows, in folder order. */
export function listedImages() {
  return state.filter === "all" ? state.images : state.images.filter((i) => i.review === state.filter);
}

/** The next image still to do after the current one (wrapping), or null. */
export function nextToDo() {
  const names = state.images.map((i) => i.name);
  const start = names.indexOf(state.current);
  for (let k = 1; k <= names.length; k++) {
    const image = state.images[(start + k) % names.length];
    if (image.review === "todo" && image.name !== state.current) return image.name;
  }
  return null;
}

function chip(value, text, count) {
  const button = document.createElement("button");
  button.className = "chip";
  button.dataset.filter = value;
  button.setAttribute("aria-pressed", String(state.filter === value));
  button.textContent = count === undefined ? text : `${text} ${count}`;
  return button;
}

/** Redraw the chips and the list; `open(name)` opens an image, `filter(value)` changes the filter. */
export function renderImages({ open, filter }) {
  const chips = [chip("all", "all", state.images.length)];
  for (const [value, text] of Object.entries(REVIEW_NAMES)) chips.push(chip(value, text, state.reviews[value] || 0));
  chips.forEach((c) => c.addEventListener("click", () => filter(c.dataset.filter)));
  $("review-filter").replaceChildren(...chips);
  const shown = listedImages();
  $("images").replaceChildren(...shown.map((img) => {
    const li = document.createElement("li");
    li.dataset.name = img.name;
    li.dataset.review = img.review;
    li.className = img.name === state.current ? "current" : "";
    const dot = document.createElement("span");
    dot.className = `dot ${img.status}`;
    dot.title = `encoding: ${img.status}`;
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = img.name;
    const badge = document.createElement("span");
    badge.className = `badge ${img.review}`;
    badge.textContent = REVIEW_NAMES[img.review];
    const count = document.createElement("span");
    count.className = "count";
    count.textContent = img.objects ? `${img.objects}` : "";
    count.title = "objects";
    li.append(dot, name, badge, count);
    li.addEventListener("click", () => open(img.name));
    return li;
  }));
  if (!shown.length) {
    const li = document.createElement("li");
    li.className = "muted";
    li.textContent = `no image is ${REVIEW_NAMES[state.filter] || state.filter}`;
    $("images").append(li);
  }
}

/** Take a new review status of the current image into the list and the counts. */
export function noteReview(review) {
  const image = state.images.find((i) => i.name === state.current);
  if (!image || image.review === review) return;
  state.reviews[image.review] = Math.max(0, (state.reviews[image.review] || 0) - 1);
  state.reviews[review] = (state.reviews[review] || 0) + 1;
  image.review = review;
}
