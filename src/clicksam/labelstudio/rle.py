"""Label Studio's brush RLE: the ``value.rle`` list of a ``brushlabels`` result.

This is *not* COCO RLE. Label Studio stores a brush mask as the flattened H×W×4 RGBA image
(row-major, channels last), packed with the rle-pack bit format of thi.ng/umbrella:

```
header:  32 bits  n, the number of values (H*W*4)
          5 bits  word size - 1 (8-bit values: 7)
        4×4 bits  the four run-length field sizes - 1
chunks:   1 bit   1 = a run of one repeated value, 0 = literal values
          2 bits  which of the four length-field sizes follows
          k bits  chunk length - 1
          then one word (a run) or chunk-length words (literal)
```
Bits are most-significant first; the last byte is padded with zeros. The result is a list of
byte values (0-255). Label Studio reads the alpha channel (``[..., 3]``) as the mask; we write
255 into all four channels of a masked pixel, as Label Studio's own converter does.
"""
from __future__ import annotations

import numpy as np

__all__ = ["mask_to_rle", "rle_to_mask", "decode_values"]

WORD_BITS = 8
# chunk length fields: 3, 4, 8 or 16 bits (lengths up to 8, 16, 256 and 65536)
LENGTH_FIELD_BITS = (3, 4, 8, 16)
MAX_CHUNK = 1 << LENGTH_FIELD_BITS[-1]


def _pack_fields(values: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """Bit-pack unsigned ``values`` into fields of ``widths`` (1-32) bits, MSB first -> uint8 bytes."""
    widths = widths.astype(np.int64)
    aligned = (values.astype(np.uint64) << (32 - widths).astype(np.uint64)).astype(">u4")  # left-align in 32 bits
    bits = np.unpackbits(aligned.view(np.uint8).reshape(-1, 4), axis=1)
    return np.packbits(bits[np.arange(32) < widths[:, None]])


def _runs(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run lengths and values of a 1-d array."""
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    edges = np.concatenate(([0], change, [flat.size]))
    return np.diff(edges), flat[edges[:-1]]


def mask_to_rle(mask: np.ndarray) -> list[int]:
    """Encode an H×W mask (bool, or nonzero = object) as Label Studio brush RLE bytes.

    Every run of equal pixels becomes repeat chunks of at most 65,536 values (a pixel is four
    equal RGBA values, so no run is shorter than 4).
    """
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.size == 0:
        raise ValueError(f"mask must be a non-empty H×W array, got shape {mask.shape}")
    if mask.size * 4 >= 1 << 32:
        raise ValueError(f"a {mask.shape[1]}x{mask.shape[0]} mask is too large for Label Studio's brush RLE "
                         "(its 32-bit header counts H*W*4 values)")
    lengths, values = _runs((mask if mask.dtype == bool else mask != 0).reshape(-1))
    lengths = lengths.astype(np.int64) * 4  # RGBA: four equal channel values per pixel
    values = np.where(values, 255, 0)
    pieces = -(-lengths // MAX_CHUNK)  # chunks per run
    chunk_value = np.repeat(values, pieces)
    chunk_len = np.full(int(pieces.sum()), MAX_CHUNK, dtype=np.int64)
    last = np.cumsum(pieces) - 1
    chunk_len[last] = lengths - (pieces - 1) * MAX_CHUNK
    size_index = np.searchsorted(np.array([1 << b for b in LENGTH_FIELD_BITS]), chunk_len)
    length_bits = np.array(LENGTH_FIELD_BITS)[size_index]
    # one code per chunk: flag 1 (a run), size index (2 bits), length - 1, value (8 bits)
    chunk_widths = 3 + length_bits + WORD_BITS
    chunk_codes = (((4 | size_index) << length_bits | (chunk_len - 1)) << WORD_BITS) | chunk_value
    header_values = np.array([mask.size * 4, WORD_BITS - 1, *[b - 1 for b in LENGTH_FIELD_BITS]], np.int64)
    header_widths = np.array([32, 5, 4, 4, 4, 4], np.int64)
    packed = _pack_fields(np.concatenate([header_values, chunk_codes]), np.concatenate([header_widths, chunk_widths]))
    return packed.tolist()


class _BitReader:
    def __init__(self, data: bytes) -> None:
        self.bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8))
        self.pos = 0

    def read(self, width: int) -> int:
        if self.pos + width > self.bits.size:
            raise ValueError("brush RLE ends in the middle of a value (truncated or not Label Studio RLE)")
        value = 0
        for bit in self.bits[self.pos : self.pos + width]:
            value = (value << 1) | int(bit)
        self.pos += width
        return value


def decode_values(rle: list[int] | bytes) -> np.ndarray:
    """Decode brush RLE to its flat value array (length n from the header, uint8)."""
    try:
        data = bytes(rle)
    except (TypeError, ValueError) as exc:
        raise ValueError("brush RLE must be a list of byte values 0-255") from exc
    reader = _BitReader(data)
    count = reader.read(32)
    word = reader.read(5) + 1
    if word > 8:
        raise ValueError(f"brush RLE with {word}-bit words is not a Label Studio mask (8-bit words expected)")
    sizes = [reader.read(4) + 1 for _ in range(4)]
    out = np.zeros(count, dtype=np.uint8)
    i = 0
    while i < count:
        repeat = reader.read(1)
        end = i + 1 + reader.read(sizes[reader.read(2)])
        if end > count:
            raise ValueError(f"brush RLE chunk runs past the {count} values of its header")
        if repeat:
            out[i:end] = reader.read(word)
        else:
            for j in range(i, end):
                out[j] = reader.read(word)
        i = end
    return out


def rle_to_mask(rle: list[int] | bytes, width: int, height: int) -> np.ndarray:
    """Decode brush RLE to an H×W bool mask (the alpha channel, nonzero = object)."""
    values = decode_values(rle)
    if values.size != width * height * 4:
        raise ValueError(f"brush RLE holds {values.size} values, not {width}x{height}x4 = {width * height * 4}")
    return values.reshape(height, width, 4)[..., 3] != 0
