// Drawing on one canvas: the image (its display copy, and full-resolution tiles when zoomed in past
// it), the masks of the visible objects (fill + outline, composed at the image's full resolution over
// the objects' bounding box and drawn pixel for pixel when zoomed in), the clicks, the box, the rubber
// band, the brush stroke being drawn and the brush cursor. Coordinates are full-resolution image pixels.
import { TileLayer } from "./tiles.js";
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

/** The union of the objects' bounding boxes [x0, y0, x1, y1) in whole pixels (COCO bbox [x, y, w, h]). */
function unionBox(objects, w, h) {
  let [x0, y0, x1, y1] = [w, h, 0, 0];
  for (const { bbox } of objects) {
    if (!bbox || bbox[2] <= 0 || bbox[3] <= 0) continue;
    x0 = Math.min(x0, Math.floor(bbox[0]));
    y0 = Math.min(y0, Math.floor(bbox[1]));
    x1 = Math.max(x1, Math.ceil(bbox[0] + bbox[2]));
    y1 = Math.max(y1, Math.ceil(bbox[1] + bbox[3]));
  }
  return x1 > x0 && y1 > y0 ? [x0, y0, Math.min(x1, w), Math.min(y1, h)] : null;
}

/** Fill and outline layers of the masks (later objects over earlier ones), at image resolution over
 * the objects' bounding box (so a large image costs what its objects cover); null when all are empty. */
function composeMasks(objects, w, h, colourOf, selectedId) {
  const area = unionBox(objects, w, h);
  if (!area) return null;
  const [bx, by] = area;
  const bw = area[2] - bx;
  const bh = area[3] - by;
  const owner = new Uint16Array(bw * bh); // 1 + index into objects, 0 = none
  objects.forEach((obj, index) => {
    let pos = 0;
    obj.mask.counts.forEach((n, i) => {
      if (i % 2 === 1) {
        for (let start = pos; start < pos + n;) { // a run may span rows: one row at a time
          const y = Math.floor(start / w);
          const x = start - y * w;
          const length = Math.min(pos + n - start, w - x);
          const lo = Math.max(x, bx);
          const hi = Math.min(x + length, bx + bw);
          if (y >= by && y < by + bh && hi > lo) owner.fill(index + 1, (y - by) * bw + lo - bx, (y - by) * bw + hi - bx);
          start += length;
        }
      }
      pos += n;
    });
  });
  const fill = new ImageData(bw, bh);
  const edge = new ImageData(bw, bh);
  const colours = objects.map(colourOf);
  const alphas = objects.map((o) => (o.id === selectedId ? 255 : 170));
  for (let y = 0; y < bh; y++) {
    for (let x = 0; x < bw; x++) {
      const i = y * bw + x;
      const k = owner[i];
      if (!k) continue;
      const [r, g, b] = colours[k - 1];
      const p = i * 4;
      fill.data[p] = r; fill.data[p + 1] = g; fill.data[p + 2] = b; fill.data[p + 3] = alphas[k - 1];
      // outside the box nothing is covered: its edge pixels are borders
      const border = x === 0 || y === 0 || x === bw - 1 || y === bh - 1 ||
        owner[i - 1] !== k || owner[i + 1] !== k || owner[i - bw] !== k || owner[i + bw] !== k;
      if (border) {
        edge.data[p] = r; edge.data[p + 1] = g; edge.data[p + 2] = b; edge.data[p + 3] = 255;
      }
    }
  }
  return { x: bx, y: by, fill: imageCanvas(fill, bw, bh), edge: imageCanvas(edge, bw, bh) };
}

export class View {
  constructor(canvas) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.viewport = new Viewport();
    this.image = null; // the display copy (an <img>), drawn over width x height image pixels
    this.width = 0;
    this.height = 0;
    this.tiles = new TileLayer(() => this.onTile());
    this.onTile = () => {}; // set by the page: redraw when a tile arrives
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
    if (this.image) this.viewport.fit(this.width, this.height, this.cssWidth, this.cssHeight);
  }

  /** Show `img` (the display copy, or null for nothing) as an image of `width` x `height` pixels;
   * `tiles`: {size, levels, url(level, col, row)} of its full-resolution tiles. */
  setImage(img, width = 0, height = 0, tiles = null) {
    this.image = img;
    this.width = img ? width : 0;
    this.height = img ? height : 0;
    this.tiles.setSource(img && tiles ? { ...tiles, width, height, displayWidth: img.naturalWidth } : null);
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
    const w = this.width;
    const h = this.height;
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
    const w = this.width;
    const h = this.height;
    ctx.setTransform(dpr * vp.scale, 0, 0, dpr * vp.scale, dpr * vp.x, dpr * vp.y);
    // a display copy smaller than the image is smoothed; a full-size one is a crisp square per pixel zoomed in
    ctx.imageSmoothingEnabled = vp.scale < 1 || this.image.naturalWidth < w;
    ctx.drawImage(this.image, 0, 0, w, h);
    const level = this.tiles.level(dpr * vp.scale);
    if (level >= 0) {
      const a = vp.toImage(0, 0);
      const b = vp.toImage(this.cssWidth, this.cssHeight);
      ctx.imageSmoothingEnabled = vp.scale < 1;
      this.tiles.draw(ctx, level, a.x, a.y, b.x, b.y);
    }
    const shown = objects.filter((o) => o.mask);
    if (!this.masks || this.masks.key !== key) {
      this.masks = { key, ...composeMasks(shown, w, h, colourOf, selectedId) };
    }
    if (this.masks.fill) {
      ctx.imageSmoothingEnabled = false;
      ctx.globalAlpha = this.opacity;
      ctx.drawImage(this.masks.fill, this.masks.x, this.masks.y);
      ctx.globalAlpha = 1;
      if (this.outline) ctx.drawImage(this.masks.edge, this.masks.x, this.masks.y);
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
