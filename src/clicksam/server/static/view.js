// Drawing on one canvas: the image, the masks of the visible objects (fill + outline, composed
// at the image's full resolution and drawn pixel for pixel when zoomed in), the clicks, the box,
// the rubber band, the brush stroke being drawn and the brush cursor.
import { Viewport } from "./viewport.js";

/** Decode row-major runs {size: [h, w], counts: [bg, fg, bg, ...]} into a Uint8Array (1 = object). */
export function decodeRuns(runs) {
  const [h, w] = runs.size;
  const out = new Uint8Array(h * w);
  let pos = 0;
  runs.counts.forEach((n, i) => {
    if (i % 2 === 1) out.fill(1, pos, pos + n);
    pos += n;
  });
  return out;
}

function imageCanvas(data, w, h) {
  const c = document.createElement("canvas");
  c.width = w;
  c.height = h;
  c.getContext("2d").putImageData(data, 0, 0);
  return c;
}

/** Fill and outline layers of the masks (later objects over earlier ones), at image resolution. */
function composeMasks(objects, w, h, colourOf, selectedId) {
  const owner = new Uint16Array(w * h); // 1 + index into objects, 0 = none
  objects.forEach((obj, index) => {
    let pos = 0;
    obj.mask.counts.forEach((n, i) => {
      if (i % 2 === 1) owner.fill(index + 1, pos, pos + n);
      pos += n;
    });
  });
  const fill = new ImageData(w, h);
  const edge = new ImageData(w, h);
  const colours = objects.map(colourOf);
  const alphas = objects.map((o) => (o.id === selectedId ? 255 : 170));
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = y * w + x;
      const k = owner[i];
      if (!k) continue;
      const [r, g, b] = colours[k - 1];
      const p = i * 4;
      fill.data[p] = r; fill.data[p + 1] = g; fill.data[p + 2] = b; fill.data[p + 3] = alphas[k - 1];
      const border = x === 0 || y === 0 || x === w - 1 || y === h - 1 ||
        owner[i - 1] !== k || owner[i + 1] !== k || owner[i - w] !== k || owner[i + w] !== k;
      if (border) {
        edge.data[p] = r; edge.data[p + 1] = g; edge.data[p + 2] = b; edge.data[p + 3] = 255;
      }
    }
  }
  return { fill: imageCanvas(fill, w, h), edge: imageCanvas(edge, w, h) };
}

export class View {
  constructor(canvas) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.viewport = new Viewport();
    this.image = null;
    this.masks = null; // {key, fill, edge}
    this.opacity = 0.5;
    this.outline = true;
    this.showPrompts = true;
    this.drag = null; // {x0, y0, x1, y1} rubber band in image pixels
    this.stroke = null; // {mode, radius, points: [[x, y]...]} being drawn, image coordinates
    this.cursor = null; // {x, y} screen point of the brush cursor, or null
    this.cursorRadius = 0; // image pixels
  }

  get cssWidth() { return this.canvas.clientWidth || 1; }

  get cssHeight() { return this.canvas.clientHeight || 1; }

  /** Match the canvas buffer to its size on screen (device pixels); refit when following the size. */
  resize() {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(this.cssWidth * dpr));
    const h = Math.max(1, Math.round(this.cssHeight * dpr));
    if (this.canvas.width !== w || this.canvas.height !== h) {
      this.canvas.width = w;
      this.canvas.height = h;
    }
    if (this.image && this.viewport.fitted) this.fit();
  }

  fit() {
    if (this.image) this.viewport.fit(this.image.naturalWidth, this.image.naturalHeight, this.cssWidth, this.cssHeight);
  }

  setImage(img) {
    this.image = img;
    this.masks = null;
    this.resize();
    this.fit();
  }

  /** Screen point of a mouse event relative to the canvas. */
  screenPoint(event) {
    const rect = this.canvas.getBoundingClientRect();
    return { x: event.clientX - rect.left, y: event.clientY - rect.top };
  }

  /** Image coordinates under a mouse event (continuous), or null outside the image. */
  imagePoint(event, clamp = false) {
    if (!this.image) return null;
    const s = this.screenPoint(event);
    const p = this.viewport.toImage(s.x, s.y);
    const w = this.image.naturalWidth;
    const h = this.image.naturalHeight;
    if (clamp) return { x: Math.min(Math.max(p.x, 0), w - 0.001), y: Math.min(Math.max(p.y, 0), h - 0.001) };
    return p.x < 0 || p.y < 0 || p.x >= w || p.y >= h ? null : p;
  }

  /** Redraw; key changes whenever a mask, colour, visibility or the selection changed. */
  draw(objects, selectedId, colourOf, key) {
    const { ctx, canvas, viewport: vp } = this;
    const dpr = canvas.width / this.cssWidth;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    if (!this.image) return;
    const w = this.image.naturalWidth;
    const h = this.image.naturalHeight;
    ctx.setTransform(dpr * vp.scale, 0, 0, dpr * vp.scale, dpr * vp.x, dpr * vp.y);
    ctx.imageSmoothingEnabled = vp.scale < 1; // zoomed in: one image pixel is a crisp square
    ctx.drawImage(this.image, 0, 0);
    const shown = objects.filter((o) => o.mask);
    if (!this.masks || this.masks.key !== key) {
      this.masks = shown.length ? { key, ...composeMasks(shown, w, h, colourOf, selectedId) } : { key };
    }
    if (this.masks.fill) {
      ctx.imageSmoothingEnabled = false;
      ctx.globalAlpha = this.opacity;
      ctx.drawImage(this.masks.fill, 0, 0);
      ctx.globalAlpha = 1;
      if (this.outline) ctx.drawImage(this.masks.edge, 0, 0);
    }
    if (this.stroke) this.drawStroke(this.stroke, colourOf);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0); // screen space from here on
    if (this.showPrompts) for (const obj of objects) this.drawPrompts(obj, obj.id === selectedId, colourOf(obj));
    if (this.drag) {
      const a = vp.toScreen(Math.min(this.drag.x0, this.drag.x1), Math.min(this.drag.y0, this.drag.y1));
      const b = vp.toScreen(Math.max(this.drag.x0, this.drag.x1) + 1, Math.max(this.drag.y0, this.drag.y1) + 1);
      ctx.setLineDash([6, 4]);
      ctx.strokeStyle = "#fff";
      ctx.lineWidth = 2;
      ctx.strokeRect(a.x, a.y, b.x - a.x, b.y - a.y);
      ctx.setLineDash([]);
    }
    if (this.cursor) {
      ctx.beginPath();
      ctx.arc(this.cursor.x, this.cursor.y, Math.max(this.cursorRadius * vp.scale, 2), 0, 2 * Math.PI);
      ctx.strokeStyle = "#fff";
      ctx.lineWidth = 1.5;
      ctx.stroke();
    }
  }

  /** The stroke being drawn, as the server will paint it (round brush along the polyline). */
  drawStroke(stroke, colourOf) {
    const { ctx } = this;
    ctx.globalAlpha = 0.6;
    const paint = stroke.object ? `rgb(${colourOf(stroke.object).join(",")})` : "#fff";
    ctx.strokeStyle = stroke.mode === "paint" ? paint : "#000";
    ctx.lineWidth = 2 * stroke.radius;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.beginPath();
    const [first, ...rest] = stroke.points;
    ctx.moveTo(first[0], first[1]);
    if (!rest.length) ctx.lineTo(first[0] + 0.001, first[1]);
    for (const [x, y] of rest) ctx.lineTo(x, y);
    ctx.stroke();
    ctx.globalAlpha = 1;
  }

  drawPrompts(obj, selected, [r, g, b]) {
    const { ctx, viewport: vp } = this;
    if (obj.box) {
      const [x0, y0, x1, y1] = obj.box;
      const a = vp.toScreen(x0, y0);
      const c = vp.toScreen(x1 + 1, y1 + 1);
      ctx.strokeStyle = `rgb(${r},${g},${b})`;
      ctx.lineWidth = selected ? 2.5 : 1.5;
      ctx.strokeRect(a.x, a.y, c.x - a.x, c.y - a.y);
    }
    if (!selected) return;
    for (const [x, y, positive] of obj.clicks) {
      const p = vp.toScreen(x + 0.5, y + 0.5); // the centre of the clicked pixel
      ctx.beginPath();
      ctx.arc(p.x, p.y, 5, 0, 2 * Math.PI);
      ctx.fillStyle = positive ? "#22c55e" : "#ef4444";
      ctx.fill();
      ctx.lineWidth = 1.5;
      ctx.strokeStyle = "#fff";
      ctx.stroke();
    }
  }
}
