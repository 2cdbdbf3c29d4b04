// Full-resolution tiles over the display copy, when the view is zoomed in past the copy's resolution.
// The server's pyramid: level L is the image reduced by 2^L, cut into size x size tiles; only the
// levels finer than the display copy exist. Masks do not use this: they are always full resolution.

const MAX_TILES = 256; // tiles kept (least recently drawn first out)

export class TileLayer {
  /** onLoad() is called when a tile arrives (redraw). */
  constructor(onLoad) {
    this.onLoad = onLoad;
    this.source = null;
    this.tiles = new Map();
  }

  /** source: {width, height, displayWidth, size, levels, url(level, col, row)}, or null for none. */
  setSource(source) {
    this.source = source && source.levels ? source : null;
    this.tiles = new Map();
  }

  /** The level to draw at `devicePerPixel` device pixels per image pixel: the coarsest whose pixel
   * is at most a device pixel; -1 when the display copy is as fine as the screen. */
  level(devicePerPixel) {
    const s = this.source;
    if (!s || devicePerPixel * (s.width / s.displayWidth) <= 1) return -1;
    return Math.min(Math.max(0, Math.floor(Math.log2(1 / devicePerPixel))), s.levels - 1);
  }

  /** Draw the loaded tiles of `level` over the visible image rect [x0, x1) x [y0, y1) (ctx in image
   * coordinates) and ask for the missing ones. */
  draw(ctx, level, x0, y0, x1, y1) {
    const s = this.source;
    const factor = 2 ** level;
    const span = s.size * factor; // image pixels per tile side
    ctx.save();
    ctx.beginPath();
    ctx.rect(0, 0, s.width, s.height); // a last, partial level pixel must not spill over the image's edge
    ctx.clip();
    for (let row = Math.max(0, Math.floor(y0 / span)); row * span < Math.min(y1, s.height); row++) {
      for (let col = Math.max(0, Math.floor(x0 / span)); col * span < Math.min(x1, s.width); col++) {
        const tile = this.get(level, col, row);
        if (tile.ready) {
          ctx.drawImage(tile.img, col * span, row * span, tile.img.naturalWidth * factor, tile.img.naturalHeight * factor);
        }
      }
    }
    ctx.restore();
  }

  get(level, col, row) {
    const key = `${level}/${col}/${row}`;
    let tile = this.tiles.get(key);
    if (tile) {
      this.tiles.delete(key); // most recently used last
      this.tiles.set(key, tile);
      return tile;
    }
    const source = this.source;
    tile = { img: new Image(), ready: false };
    tile.img.onload = () => { tile.ready = true; if (this.source === source) this.onLoad(); };
    tile.img.src = source.url(level, col, row);
    this.tiles.set(key, tile);
    while (this.tiles.size > MAX_TILES) this.tiles.delete(this.tiles.keys().next().value);
    return tile;
  }
}
