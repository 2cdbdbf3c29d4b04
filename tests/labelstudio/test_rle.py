"""Label Studio's brush RLE (rle-pack bit format over RGBA values), encoder and decoder."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from clicksam.labelstudio.rle import decode_values, mask_to_rle, rle_to_mask


def _bytes(bits: str) -> list[int]:
    bits += "0" * (-len(bits) % 8)
    return [int(bits[i : i + 8], 2) for i in range(0, len(bits), 8)]


HEADER_8 = "{:032b}".format(8) + "00111" + "0010" + "0011" + "0111" + "1111"  # 8 values, 8-bit words, 3/4/8/16


def test_known_stream_for_two_pixels():
    """[object, background] is 255×4 then 0×4: two run chunks of length 4 with the 3-bit length field."""
    expected = _bytes(HEADER_8 + "1" + "00" + "011" + "11111111" + "1" + "00" + "011" + "00000000")
    assert mask_to_rle(np.array([[True, False]])) == expected


def test_long_runs_split_at_65536_values():
    mask = np.ones((200, 100), bool)  # 80,000 values: one chunk of 65,536 and one of 14,464
    rle = mask_to_rle(mask)
    header = "{:032b}".format(80_000) + "00111" + "0010" + "0011" + "0111" + "1111"
    first = "1" + "11" + "{:016b}".format(65_535) + "11111111"
    second = "1" + "11" + "{:016b}".format(14_463) + "11111111"
    assert rle == _bytes(header + first + second)
    assert rle_to_mask(rle, 100, 200).all()


def test_decodes_literal_chunks():
    """Label Studio's own encoder writes single values as literal chunks; the decoder reads them."""
    literal = "0" + "01" + "0011" + "".join("{:08b}".format(v) for v in (255,) * 4)  # 4 literal values (4-bit length)
    run = "1" + "00" + "011" + "00000000"
    assert decode_values(_bytes(HEADER_8 + literal + run)).tolist() == [255] * 4 + [0] * 4
    assert rle_to_mask(_bytes(HEADER_8 + literal + run), 2, 1).tolist() == [[True, False]]


@settings(max_examples=60, deadline=None)
@given(arrays(np.bool_, st.tuples(st.integers(1, 40), st.integers(1, 40))))
def test_round_trip(mask):
    rle = mask_to_rle(mask)
    assert all(0 <= b <= 255 for b in rle)
    height, width = mask.shape
    values = decode_values(rle).reshape(height, width, 4)
    assert (values == mask[..., None] * 255).all()  # every RGBA channel, as Label Studio's converter writes
    assert np.array_equal(rle_to_mask(rle, width, height), mask)


def test_nonzero_integers_count_as_object():
    assert np.array_equal(rle_to_mask(mask_to_rle(np.array([[0, 3], [255, 0]], np.uint8)), 2, 2),
                          [[False, True], [True, False]])


def test_errors_say_what_is_wrong():
    with pytest.raises(ValueError, match="H×W"):
        mask_to_rle(np.zeros((2, 2, 4), bool))
    rle = mask_to_rle(np.ones((3, 4), bool))
    with pytest.raises(ValueError, match="not 5x3x4"):
        rle_to_mask(rle, 5, 3)
    with pytest.raises(ValueError, match="truncated"):
        decode_values(rle[:6])
    with pytest.raises(ValueError, match="byte values"):
        decode_values([0, 1, 300])
    with pytest.raises(ValueError, match="past the"):
        decode_values(_bytes(HEADER_8 + "1" + "10" + "{:08b}".format(20) + "11111111"))
