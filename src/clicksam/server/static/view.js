// Drawing the image, the masks (fill + outline), the clicks and the box on one canvas.

const PALETTE = [
  [30, 144, 255], [255, 99, 71], [60, 179, 113], [238, 130, 238], [255, 165, 0],
  [0, 206, 209], [255, 215, 0], [147, 112, 219], [205, 92, 92], [154, 205, 50],
];

/** RGB colour of an object id. */
export function objectColour(id) {
  return PALETTE[(id - 1) % PALETTE.length];
}

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

/** An offscreen canvas with the mask filled in the colour, and one with its outline. */
function maskLayers(mask, w, h, colour) {
  const fill = new ImageData(w, h);
  const edge = new ImageData(w, h);
  const [r, g, b] = colour;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = y * w + x;
      if (!mask[i]) continue;
      const p = i * 4;
      fill.data[p] = r; fill.data[p + 1] = g; fill.data[p + 2] = b; fill.data[p + 3] = 255;
      const border = x === 0 || y === 0 || x === w - 1 || y === h - 1 ||
        !mask[i - 1] || !mask[i + 1] || !mask[i - w] || !mask[i + w];
      if (border) {
        edge.data[p] = r; edge.data[p + 1] = g; edge.data[p + 2] = b; edge.data[p + 3] = 255;
      }
    }
  }
  const toCanvas = (data) => {
    const c = document.createElement("canvas");
    c.width = w; c.height = h;
    c.getContext("2d").putImageData(data, 0, 0);
    return c;
  };
  return { fill: toCanvas(fill), edge: toCanvas(edge) };
}

export class View {
  constructor(canvas) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.image = null;
    this.layers = new Map(); // object id -> {key, fill, edge}
    this.opacity = 0.5;
    this.outline = true;
    this.showPrompts = true;
    this.drag = null; // {x0, y0, x1, y1} rubber band in image pixels
  }

  setImage(img) {
    this.image = img;
    this.canvas.width = img.naturalWidth;
    this.canvas.height = img.naturalHeight;
    this.layers.clear();
  }

  /** Client (mouse) coordinates -> image pixel coordinates, or null outside the image. */
  toImage(event) {
    const rect = this.canvas.getBoundingClientRect();
    const x = (event.clientX - rect.left) * this.canvas.width / rect.width;
    const y = (event.clientY - rect.top) * this.canvas.height / rect.height;
    if (x < 0 || y < 0 || x >= this.canvas.width || y >= this.canvas.height) return null;
    return { x: Math.floor(x), y: Math.floor(y) }; // the pixel index, as SAM's clicks are
  }

  layer(obj) {
    const key = obj.mask.counts.join(",");
    const cached = this.layers.get(obj.id);
    if (cached && cached.key === key) return cached;
    const [h, w] = obj.mask.size;
    const made = { key, ...maskLayers(decodeRuns(obj.mask), w, h, objectColour(obj.id)) };
    this.layers.set(obj.id, made);
    return made;
  }

  draw(objects, selectedId) {
    const { ctx, canvas } = this;
    if (!this.image) return;
    ctx.globalAlpha = 1;
    ctx.drawImage(this.image, 0, 0);
    const scale = canvas.width / Math.max(1, canvas.clientWidth || canvas.width); // image px per screen px
    for (const obj of objects) {
      if (!obj.mask) continue;
      const layer = this.layer(obj);
      ctx.globalAlpha = obj.id === selectedId ? this.opacity : this.opacity * 0.7;
      ctx.drawImage(layer.fill, 0, 0);
      if (this.outline) {
        ctx.globalAlpha = 1;
        ctx.drawImage(layer.edge, 0, 0);
      }
    }
    ctx.globalAlpha = 1;
    if (this.showPrompts) {
      for (const obj of objects) this.drawPrompts(obj, obj.id === selectedId, scale);
    }
    if (this.drag) {
      const { x0, y0, x1, y1 } = this.drag;
      ctx.setLineDash([6 * scale, 4 * scale]);
      ctx.strokeStyle = "#fff";
      ctx.lineWidth = 2 * scale;
      ctx.strokeRect(Math.min(x0, x1), Math.min(y0, y1), Math.abs(x1 - x0), Math.abs(y1 - y0));
      ctx.setLineDash([]);
    }
  }

  drawPrompts(obj, selected, scale) {
    const { ctx } = this;
    const [r, g, b] = objectColour(obj.id);
    if (obj.box) {
      const [x0, y0, x1, y1] = obj.box;
      ctx.strokeStyle = `rgb(${r},${g},${b})`;
      ctx.lineWidth = (selected ? 2.5 : 1.5) * scale;
      ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
    }
    if (!selected) return;
    for (const [x, y, positive] of obj.clicks) {
      ctx.beginPath();
      ctx.arc(x, y, 5 * scale, 0, 2 * Math.PI);
      ctx.fillStyle = positive ? "#22c55e" : "#ef4444";
      ctx.fill();
      ctx.lineWidth = 1.5 * scale;
      ctx.strokeStyle = "#fff";
      ctx.stroke();
    }
  }
}
