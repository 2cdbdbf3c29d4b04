// Zoom and pan: the mapping between screen (CSS) pixels of the canvas and image pixels.
// An image point (ix, iy) is shown at (x + ix * scale, y + iy * scale); pixel (i, j) covers
// [i, i + 1) x [j, j + 1) in image coordinates.

const MAX_SCALE = 64; // one image pixel as 64 screen pixels

export class Viewport {
  constructor() {
    this.scale = 1;
    this.x = 0;
    this.y = 0;
    this.fitScale = 1;
    this.fitted = true; // follow the canvas size until the user zooms or pans
  }

  /** Show the whole image centred in a view of viewW x viewH screen pixels. */
  fit(imageW, imageH, viewW, viewH) {
    this.fitScale = Math.min(viewW / imageW, viewH / imageH) || 1;
    this.scale = this.fitScale;
    this.x = (viewW - imageW * this.scale) / 2;
    this.y = (viewH - imageH * this.scale) / 2;
    this.fitted = true;
  }

  /** Multiply the zoom by factor, keeping the image point under screen point (sx, sy) in place. */
  zoomAt(sx, sy, factor) {
    const scale = Math.min(Math.max(this.scale * factor, this.fitScale / 4), Math.max(MAX_SCALE, this.fitScale));
    const k = scale / this.scale;
    this.x = sx - (sx - this.x) * k;
    this.y = sy - (sy - this.y) * k;
    this.scale = scale;
    this.fitted = false;
  }

  panBy(dx, dy) {
    this.x += dx;
    this.y += dy;
    this.fitted = false;
  }

  /** Screen point -> image coordinates (continuous). */
  toImage(sx, sy) {
    return { x: (sx - this.x) / this.scale, y: (sy - this.y) / this.scale };
  }

  /** Image coordinates -> screen point. */
  toScreen(ix, iy) {
    return { x: this.x + ix * this.scale, y: this.y + iy * this.scale };
  }
}
