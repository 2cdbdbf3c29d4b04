// The class list panel: add, rename, recolour and remove classes (saved for the whole folder).
import { api } from "./api.js";
import { $, message, state } from "./state.js";

/** Load the list from the server; `changed()` redraws what shows classes. */
export async function loadClasses(changed) {
  state.classes = (await api.classes()).classes;
  if (!state.classes.some((c) => c.id === state.currentClass)) {
    state.currentClass = state.classes.length ? state.classes[0].id : null;
  }
  renderClasses(changed);
  changed();
}

async function edit(send, changed) {
  try {
    await send();
    message("");
  } catch (err) {
    message(err.message, true);
  }
  await loadClasses(changed);
}

export function renderClasses(changed) {
  $("class-count").textContent = `(${state.classes.length})`;
  $("classes").replaceChildren(...state.classes.map((cls, index) => {
    const li = document.createElement("li");
    li.dataset.id = cls.id;
    li.className = cls.id === state.currentClass ? "current" : "";
    const key = document.createElement("span");
    key.className = "key";
    key.textContent = index < 10 ? String((index + 1) % 10) : "";
    const colour = document.createElement("input");
    colour.type = "color";
    colour.value = cls.colour;
    colour.title = "colour of this class";
    colour.addEventListener("change", () => edit(() => api.updateClass(cls.id, { colour: colour.value }), changed));
    const name = document.createElement("input");
    name.value = cls.name;
    name.title = "rename (every object of this class follows)";
    name.addEventListener("change", () => edit(() => api.updateClass(cls.id, { name: name.value }), changed));
    const uses = document.createElement("span");
    uses.className = "count";
    uses.textContent = cls.images ? `${cls.images} img` : "";
    const remove = document.createElement("button");
    remove.className = "icon delete";
    remove.textContent = "×";
    remove.title = cls.images ? "in use: give its objects another class first" : "remove this class";
    remove.disabled = cls.images > 0;
    remove.addEventListener("click", () => edit(() => api.removeClass(cls.id), changed));
    li.append(key, colour, name, uses, remove);
    return li;
  }));
}

export function wireClassForm(changed) {
  $("class-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const name = $("class-name").value.trim();
    if (!name) return;
    $("class-name").value = "";
    edit(async () => { state.currentClass = (await api.addClass(name)).id; }, changed);
  });
}
