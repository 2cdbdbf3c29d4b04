// Mouse on the canvas: clicks and boxes (click tool), strokes (brush and eraser), zoom (wheel)
// and pan (space + drag, or middle-button drag). Coordinates sent are image pixels at any zoom.

const DRAG_PIXELS = 5; // screen pixels a press must move to become a box
const ZOOM_PER_WHEEL_UNIT = 0.002;

/**
 * Wire the mouse to `view`; `tool()` says the current tool, `radius()` the brush radius (image px),
 * `maxPoints` the longest stroke the server takes. Handlers: click(x, y, positive), box([x0, y0, x1, y1]),
 * stroke.begin(s) -> false to refuse a stroke (it may set s.object), stroke.end(s) to send it
 * (s = {mode, radius, points: [[x, y]...]}), redraw().
 */
export function wirePointer(view, { tool, radius, maxPoints, click, box, stroke, redraw }) {
  const canvas = view.canvas;
  let press = null; // {kind: "prompt" | "pan" | "stroke", ...}
  let space = false;

  const typing = () => ["INPUT", "SELECT", "TEXTAREA"].includes(document.activeElement.tagName) &&
    !["range", "checkbox", "color"].includes(document.activeElement.type);
  const updateCursor = () => {
    canvas.style.cursor = press && press.kind === "pan" ? "grabbing" : space ? "grab"
      : tool() === "click" ? "crosshair" : "none";
  };

  window.addEventListener("keydown", (e) => {
    if (e.code === "Space" && !typing()) { space = true; updateCursor(); e.preventDefault(); }
    if (e.key === "Escape" && press) { press = null; view.drag = null; view.stroke = null; redraw(); }
  });
  window.addEventListener("keyup", (e) => {
    if (e.code === "Space") { space = false; updateCursor(); }
  });
  window.addEventListener("blur", () => { space = false; updateCursor(); });
  canvas.addEventListener("contextmenu", (e) => e.preventDefault());

  canvas.addEventListener("wheel", (e) => {
    e.preventDefault();
    const s = view.screenPoint(e);
    const units = e.deltaMode === 1 ? e.deltaY * 33 : e.deltaY; // lines -> pixels
    view.viewport.zoomAt(s.x, s.y, Math.exp(-units * ZOOM_PER_WHEEL_UNIT));
    redraw();
  }, { passive: false });

  canvas.addEventListener("mousedown", (e) => {
    if (press) return;
    const s = view.screenPoint(e);
    if (e.button === 1 || (e.button === 0 && space)) {
      e.preventDefault(); // no autoscroll
      press = { kind: "pan", sx: s.x, sy: s.y };
      updateCursor();
      return;
    }
    const at = view.imagePoint(e);
    if (!at || (e.button !== 0 && e.button !== 2)) return;
    if (tool() === "click") {
      press = { kind: "prompt", at, button: e.button, shift: e.shiftKey, sx: s.x, sy: s.y, dragging: false };
      return;
    }
    const mode = tool() === "eraser" || e.button === 2 ? "erase" : "paint";
    press = { kind: "stroke", mode, radius: radius(), points: [round(at)] };
    view.stroke = null;
    if (stroke.begin(press)) view.stroke = press; else press = null;
    redraw();
  });

  window.addEventListener("mousemove", (e) => {
    const s = view.screenPoint(e);
    const inside = e.target === canvas;
    view.cursor = inside && tool() !== "click" && !space ? s : null;
    view.cursorRadius = radius();
    if (!press) { if (tool() !== "click") redraw(); return; }
    if (press.kind === "pan") {
      view.viewport.panBy(s.x - press.sx, s.y - press.sy);
      press.sx = s.x;
      press.sy = s.y;
    } else if (press.kind === "stroke") {
      extendStroke(view.viewport.toImage(s.x, s.y)); // may leave the image: the server keeps what is inside
    } else if (press.button === 0) {
      if (!press.dragging && Math.hypot(s.x - press.sx, s.y - press.sy) < DRAG_PIXELS) return;
      press.dragging = true;
      const p = view.imagePoint(e, true);
      view.drag = { x0: Math.floor(press.at.x), y0: Math.floor(press.at.y), x1: Math.floor(p.x), y1: Math.floor(p.y) };
    }
    redraw();
  });

  function extendStroke(p) {
    const last = press.points[press.points.length - 1];
    if (Math.hypot(p.x - last[0], p.y - last[1]) < Math.max(0.25, press.radius / 4)) return;
    press.points.push(round(p));
    if (press.points.length >= maxPoints) { // the server's limit: go on with a new stroke
      stroke.end(press);
      press = { ...press, points: [press.points[press.points.length - 1]] };
      view.stroke = press;
      stroke.begin(press);
    }
  }

  window.addEventListener("mouseup", (e) => {
    if (!press) return;
    const done = press;
    press = null;
    updateCursor();
    if (done.kind === "pan") return;
    if (done.kind === "stroke") {
      view.stroke = null;
      stroke.end(done);
      redraw();
      return;
    }
    if (done.dragging) {
      const { x0, y0, x1, y1 } = view.drag;
      view.drag = null;
      redraw();
      if (Math.abs(x1 - x0) >= 1 && Math.abs(y1 - y0) >= 1) box([x0, y0, x1, y1]);
      return;
    }
    if (e.target !== canvas) return;
    const positive = done.button === 0 && !done.shift && !e.shiftKey;
    click(Math.floor(done.at.x), Math.floor(done.at.y), positive); // the pixel index, as SAM's clicks are
  });

  canvas.addEventListener("mouseleave", () => { view.cursor = null; redraw(); });
  return { updateCursor };
}

function round(p) {
  return [Math.round(p.x * 100) / 100, Math.round(p.y * 100) / 100];
}
