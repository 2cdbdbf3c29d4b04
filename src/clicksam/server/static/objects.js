// The object list (one compact row per object: colour, number, class, hide / lock / solo, delete)
// and the panel of the selected object (method, prompts, area, score).
import { $, classById, colourOf, isVisible, state } from "./state.js";

const ICONS = {
  eye: '<svg viewBox="0 0 16 16" aria-hidden="true"><path d="M1 8s2.5-5 7-5 7 5 7 5-2.5 5-7 5-7-5-7-5z" ' +
    'fill="none" stroke="currentColor" stroke-width="1.5"/><circle cx="8" cy="8" r="2.2" fill="currentColor"/></svg>',
  lock: '<svg viewBox="0 0 16 16" aria-hidden="true"><rect x="3" y="7" width="10" height="7" rx="1" fill="currentColor"/>' +
    '<path d="M5 7V5a3 3 0 0 1 6 0v2" fill="none" stroke="currentColor" stroke-width="1.5"/></svg>',
  solo: '<svg viewBox="0 0 16 16" aria-hidden="true"><circle cx="8" cy="8" r="5.5" fill="none" stroke="currentColor" ' +
    'stroke-width="1.5"/><circle cx="8" cy="8" r="2" fill="currentColor"/></svg>',
};

function toggle(kind, pressed, title, onClick) {
  const button = document.createElement("button");
  button.className = `icon ${kind}`;
  button.innerHTML = ICONS[kind];
  button.title = title;
  button.setAttribute("aria-pressed", String(pressed));
  button.addEventListener("click", (e) => { e.stopPropagation(); onClick(); });
  return button;
}

/** A select of the class list; `change(classId)` on a new choice. */
export function classSelect(value, change) {
  const select = document.createElement("select");
  select.className = "class";
  select.title = "class (keys 1-9, 0)";
  for (const [index, cls] of state.classes.entries()) {
    const option = document.createElement("option");
    option.value = cls.id;
    option.textContent = index < 10 ? `${(index + 1) % 10} ${cls.name}` : cls.name;
    option.selected = cls.id === value;
    select.append(option);
  }
  select.addEventListener("click", (e) => e.stopPropagation());
  select.addEventListener("change", () => change(Number(select.value)));
  return select;
}

/** Redraw the object list; handlers: select(id), update(id, change), remove(id). */
export function renderObjects({ select, update, remove }) {
  $("object-count").textContent = state.objects.length ? `(${state.objects.length})` : "";
  $("objects").replaceChildren(...state.objects.map((obj) => {
    const li = document.createElement("li");
    li.dataset.id = obj.id;
    li.className = [obj.id === state.selected ? "selected" : "", isVisible(obj) ? "" : "invisible",
      obj.locked ? "locked" : ""].join(" ").trim();
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = `rgb(${colourOf(obj).join(",")})`;
    const number = document.createElement("span");
    number.className = "number";
    number.textContent = `#${obj.id}`;
    number.title = obj.mask ? `${obj.area} px` : "empty";
    const cls = classSelect(obj.class, (id) => update(obj.id, { class: id }));
    const del = document.createElement("button");
    del.className = "icon delete";
    del.title = "delete this object (Delete; undo brings it back)";
    del.textContent = "×";
    del.addEventListener("click", (e) => { e.stopPropagation(); remove(obj.id); });
    li.append(swatch, number, cls,
      toggle("eye", !obj.hidden, obj.hidden ? "show (H)" : "hide (H)", () => update(obj.id, { hidden: !obj.hidden })),
      toggle("lock", obj.locked, obj.locked ? "unlock (L)" : "lock: no changes (L)", () => update(obj.id, { locked: !obj.locked })),
      toggle("solo", obj.solo, obj.solo ? "end solo (S)" : "solo: show only this (S)", () => update(obj.id, { solo: !obj.solo })),
      del);
    li.addEventListener("click", () => select(obj.id));
    return li;
  }));
  const row = $("objects").querySelector("li.selected");
  if (row) row.scrollIntoView({ block: "nearest" });
}

/** The selected object's details: method select, prompts and size. */
export function renderSelected({ update }) {
  const obj = state.objects.find((o) => o.id === state.selected);
  $("selected-panel").hidden = !obj;
  if (!obj) return;
  const cls = classById(obj.class);
  $("selected-title").textContent = `#${obj.id} ${cls ? cls.name : ""}${obj.locked ? " · locked" : ""}` +
    `${isVisible(obj) ? "" : " · hidden"}`;
  const select = $("method");
  select.replaceChildren(...state.info.methods.map((m) => {
    const option = document.createElement("option");
    option.value = m.name;
    option.disabled = !m.available;
    option.textContent = m.available ? m.name : `${m.name} (unavailable)`;
    if (!m.available) option.title = m.reason;
    option.selected = m.name === obj.method;
    return option;
  }));
  select.onchange = () => update(obj.id, { method: select.value });
  const negatives = obj.clicks.filter((c) => !c[2]).length;
  $("selected-meta").textContent = `${obj.clicks.length} click(s), ${negatives} negative${obj.box ? ", box" : ""}` +
    `${obj.strokes ? `, ${obj.strokes} stroke(s)` : ""} · ${obj.area} px` +
    `${obj.score == null ? "" : ` · score ${obj.score.toFixed(2)}`}`;
  $("reset").disabled = obj.locked || (!obj.clicks.length && !obj.box && !obj.strokes);
}
