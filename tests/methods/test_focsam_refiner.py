"""FocusRefiner: official parameter names, the focus window, and the block logic against a
straightforward per-window reference written from SPEC §4."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from clicksam.methods.focsam import FocusRefiner, box_to_cells, draw_expand_ratio, focus_box, focus_cells
from clicksam.methods.focsam.dcn import modulated_deform_conv2d

SMALL = dict(embed_dim=32, depth=3, num_heads=4, mlp_ratio=2.0, window_size=4, frame_size=256)


def test_state_dict_keys_are_the_official_refine_head_keys(shared_dir):
    entries = json.loads((shared_dir / "reference" / "focsam_vit_h_state_dict_shapes.json").read_text())
    official = [(k[len("refine_head."):], tuple(s)) for k, s in entries if k.startswith("refine_head.")]
    ours = [(k, tuple(v.shape)) for k, v in FocusRefiner().state_dict().items()]
    assert ours == official
    assert sum(v.numel() for v in FocusRefiner().parameters()) == 25_396_058


# -- focus window -------------------------------------------------------------------------

def official_cells(logits: torch.Tensor, ratio: tuple[float, float], grid: int, frame: int) -> torch.Tensor:
    """The reference recipe: upsample, box of >0 (empty → frame), expand in float32 with
    round-half-even, clip, rasterise at frame size, adaptive max-pool to the grid."""
    up = F.interpolate(logits.float(), (frame, frame), mode="bilinear", align_corners=False)[:, 0] > 0
    masks = []
    for m in up.numpy():
        rows, cols = np.where(m.any(1))[0], np.where(m.any(0))[0]
        if rows.size == 0:
            left, top, right, bottom = 0, 0, frame, frame
        else:
            left, top, right, bottom = cols[0], rows[0], cols[-1] + 1, rows[-1] + 1
        f32 = np.float32
        xc, yc = (f32(left) + f32(right)) / f32(2), (f32(top) + f32(bottom)) / f32(2)
        hr, wr = f32(ratio[0]), f32(ratio[1])
        left = max(0, int(np.round(xc - wr * (xc - f32(left)))))
        right = min(frame, int(np.round(xc - wr * (xc - f32(right)))))
        top = max(0, int(np.round(yc - hr * (yc - f32(top)))))
        bottom = min(frame, int(np.round(yc - hr * (yc - f32(bottom)))))
        box = np.zeros((frame, frame), np.float32)
        box[top:bottom, left:right] = 1
        masks.append(box)
    pooled = F.adaptive_max_pool2d(torch.from_numpy(np.stack(masks))[:, None], grid)
    return pooled[:, 0] > 0


@settings(max_examples=60, deadline=None)
@given(
    frame=st.sampled_from([64, 100, 256]),
    grid=st.sampled_from([4, 7, 16]),
    data=st.data(),
)
def test_box_to_cells_is_the_adaptive_max_pool_of_the_box(frame, grid, data):
    left = data.draw(st.integers(0, frame - 1))
    top = data.draw(st.integers(0, frame - 1))
    right = data.draw(st.integers(left, frame))
    bottom = data.draw(st.integers(top, frame))
    box_mask = torch.zeros(1, 1, frame, frame)
    box_mask[..., top:bottom, left:right] = 1
    want = F.adaptive_max_pool2d(box_mask, grid)[0, 0] > 0
    got = box_to_cells(torch.tensor([[left, top, right, bottom]]), grid, frame)[0]
    assert torch.equal(got, want)


@pytest.mark.parametrize("ratio", [(1.4, 1.4), (1.0, 1.3), (1.37, 1.01)])
def test_focus_cells_follow_the_reference_recipe(ratio):
    gen = torch.Generator().manual_seed(0)
    logits = torch.full((4, 1, 64, 64), -3.0)
    logits[0, 0, 10:20, 30:41] = 4.0
    logits[1, 0, 0:3, 60:64] = 1.0  # touching the border
    logits[3] = torch.randn(1, 64, 64, generator=gen) - 2.5  # scattered → large box
    got = focus_cells(logits, ratio, grid_size=16, frame_size=256)
    want = official_cells(logits, ratio, grid=16, frame=256)
    assert torch.equal(got, want)
    assert got[2].all()  # empty mask → whole canvas


def test_focus_box_rounds_half_to_even_about_the_centre():
    logits = torch.full((1, 1, 32, 32), -1.0)
    logits[0, 0, 1, 1] = 1.0  # box (1, 1, 2, 2): centre 1.5, expanded ×2 → edges 0.5 and 2.5
    assert focus_box(logits, (2.0, 2.0), frame_size=32).tolist() == [[0, 0, 2, 2]]
    assert focus_box(torch.full((2, 1, 8, 8), -1.0), (1.4, 1.4), frame_size=32).tolist() == [[0, 0, 32, 32]] * 2


def test_draw_expand_ratio_is_uniform_in_range():
    gen = torch.Generator().manual_seed(0)
    draws = np.array([draw_expand_ratio(1.4, gen) for _ in range(400)])
    assert draws.min() >= 1.0 and draws.max() <= 1.4
    assert abs(draws.mean() - 1.2) < 0.02 and np.corrcoef(draws.T)[0, 1] < 0.2
    with pytest.raises(ValueError, match="at least 1.0"):
        draw_expand_ratio(0.9)


# -- reference forward --------------------------------------------------------------------

def ref_attention(attn, q, k, v):
    heads = attn.num_heads
    split = lambda t: t.view(t.shape[0], t.shape[1], heads, -1).transpose(1, 2)  # noqa: E731
    qh, kh, vh = split(attn.q_proj(q)), split(attn.k_proj(k)), split(attn.v_proj(v))
    kh = torch.cat([kh, torch.zeros_like(kh[:, :, :1])], dim=2)
    vh = torch.cat([vh, torch.zeros_like(vh[:, :, :1])], dim=2)
    weights = torch.softmax(qh @ kh.transpose(-1, -2) / qh.shape[-1] ** 0.5, dim=-1)
    return attn.proj((weights @ vh).transpose(1, 2).reshape(q.shape[0], q.shape[1], -1))


def ref_pdyrelu(m, x, c):
    dim = m.channels
    pixel = m.pixel_mlp(x @ c.transpose(1, 2)) * m.pixel_scale.exp() + m.pixel_bias
    channel = m.channel_mlp(x.mean(1, keepdim=True)) * m.channel_scale.exp() + m.channel_bias
    return torch.max(pixel[..., :dim] * x + pixel[..., dim:], channel[..., :dim] * x + channel[..., dim:])


def ref_window(block, window, query):
    """One window (1×C×w×w) and its query (1×1×C) through img2cls and cls2img."""
    up, down = block.img2cls, block.cls2img
    tokens = window.flatten(2).transpose(1, 2)
    kv = up.norm_kv(tokens)
    query = query + up.gamma1 * ref_attention(up.attn, up.norm_q(query), kv, kv)
    query = query + up.gamma2 * up.mlp(up.norm(query))
    attended = ref_attention(down.attn, tokens, tokens, tokens)
    act = ref_pdyrelu(down.relu1, down.norm1(attended), down.cls_proj(query))
    mixed = window + down.gamma1 * act.transpose(1, 2).reshape(window.shape)
    raw = down.conv2.dcn_offset(mixed)
    conv = modulated_deform_conv2d(mixed, raw[:, :18], raw[:, 18:].sigmoid(), down.conv2.dcn.weight)
    return window + down.gamma2 * F.relu(down.norm2(conv)), query


def reference_forward(refiner, embedding, logits, token, ratio):
    cells = official_cells(logits, ratio, embedding.shape[-1], refiner.frame_size)
    ws = refiner.window_size
    x, q = refiner.embed_proj(embedding), refiner.token_proj(token)
    for index, block in enumerate(refiner.blocks):
        shift = ws // 2 if index % 2 else 0
        xs, cs = torch.roll(x, (-shift, -shift), (2, 3)), torch.roll(cells, (-shift, -shift), (1, 2))
        out, new_q = xs.clone(), []
        for b in range(x.shape[0]):
            queries, chosen = [], 0
            for r in range(0, x.shape[2], ws):
                for c in range(0, x.shape[3], ws):
                    if cs[b, r : r + ws, c : c + ws].any():
                        win, qw = ref_window(block, xs[b : b + 1, :, r : r + ws, c : c + ws], q[b : b + 1])
                        out[b : b + 1, :, r : r + ws, c : c + ws] = win
                        queries.append(qw)
                        chosen += 1
                    else:
                        queries.append(q[b : b + 1])
            mean = torch.cat(queries).mean(0, keepdim=True)
            if block.cls_scale_proj is not None:
                p = max(chosen / len(queries), 0.01)
                s = torch.exp(block.cls_scale_proj.weight[0, 0] * -np.log(p) + block.cls_scale_proj.bias[0])
                mean = s * (mean - q[b : b + 1]) + q[b : b + 1]
            new_q.append(mean)
        x, q = torch.roll(out, (shift, shift), (2, 3)), torch.cat(new_q)
    return x


def _randomised_small_refiner(seed: int = 0) -> FocusRefiner:
    torch.manual_seed(seed)
    refiner = FocusRefiner(**SMALL).eval()
    with torch.no_grad():
        for name, p in refiner.named_parameters():
            if "gamma" in name or "scale" in name or "bias" in name or "norm" in name:
                p.add_(torch.randn_like(p) * 0.3)
    return refiner


def test_matches_the_per_window_reference():
    refiner = _randomised_small_refiner()
    gen = torch.Generator().manual_seed(1)
    embedding = torch.randn(3, 32, 16, 16, generator=gen)
    token = torch.randn(3, 1, 32, generator=gen)
    logits = torch.full((3, 1, 64, 64), -2.0)
    logits[0, 0, 20:30, 5:12] = 3.0  # a small box → a few windows
    logits[2, 0, 60:64, 0:40] = 3.0  # along the bottom edge; logits[1] empty → everything
    with torch.no_grad():
        got = refiner(embedding, logits, token)
        want = reference_forward(refiner, embedding, logits, token, (1.4, 1.4))
    torch.testing.assert_close(got, want, atol=2e-4, rtol=2e-4)


def test_unselected_windows_keep_the_projected_embedding():
    torch.manual_seed(0)
    refiner = FocusRefiner().eval()
    embedding = torch.randn(1, 256, 64, 64)
    logits = torch.full((1, 1, 256, 256), -5.0)
    logits[0, 0, 40:50, 40:50] = 5.0  # box ≈158..202 in the 1024 frame, ×1.4 → cells 9..12
    with torch.no_grad():
        out = refiner(embedding, logits, torch.randn(1, 1, 256))
        projected = refiner.embed_proj(embedding)
    cells = focus_cells(logits, (1.4, 1.4))[0]
    assert cells.sum() == 16 and cells[9:13, 9:13].all()
    # plain windows 0 (rows/cols 0-15) are touched; shifted windows reach cells 8..23
    touched = torch.zeros(64, 64, dtype=torch.bool)
    touched[:24, :24] = True
    torch.testing.assert_close(out[0][:, ~touched], projected[0][:, ~touched], atol=1e-5, rtol=1e-5)
    assert (out[0][:, :16, :16] - projected[0][:, :16, :16]).abs().max() > 0.1


def test_batch_items_are_independent_and_cells_override():
    refiner = _randomised_small_refiner(2)
    gen = torch.Generator().manual_seed(3)
    embedding, token = torch.randn(2, 32, 16, 16, generator=gen), torch.randn(2, 32, generator=gen)
    logits = torch.randn(2, 1, 64, 64, generator=gen) - 2.0
    with torch.no_grad():
        both = refiner(embedding, logits, token, expand_ratio=(1.1, 1.3))
        one = refiner(embedding[1:], logits[1:], token[1:], expand_ratio=(1.1, 1.3))
        cells = focus_cells(logits, (1.1, 1.3), grid_size=16, frame_size=256)
        forced = refiner(embedding, torch.zeros(0), token, cells=cells)
    torch.testing.assert_close(both[1:], one, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(both, forced)


def test_every_parameter_gets_a_gradient():
    refiner = _randomised_small_refiner(4).train()
    embedding = torch.randn(1, 32, 16, 16)
    logits = torch.full((1, 1, 64, 64), -1.0)
    logits[0, 0, 10:30, 10:30] = 1.0
    refiner(embedding, logits, torch.randn(1, 1, 32), expand_ratio=draw_expand_ratio()).square().mean().backward()
    missing = [n for n, p in refiner.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing


def test_bad_inputs_raise_actionable_errors():
    refiner = FocusRefiner(**SMALL)
    emb, logits, token = torch.zeros(1, 32, 16, 16), torch.zeros(1, 1, 64, 64), torch.zeros(1, 1, 32)
    with pytest.raises(ValueError, match="image_embedding must be"):
        refiner(torch.zeros(1, 16, 16, 16), logits, token)
    with pytest.raises(ValueError, match="not a multiple of the window"):
        refiner(torch.zeros(1, 32, 18, 16), logits, token)
    with pytest.raises(ValueError, match="mask_token must be"):
        refiner(emb, logits, torch.zeros(1, 2, 32))
    with pytest.raises(ValueError, match="coarse_logits must be"):
        refiner(emb, torch.zeros(2, 1, 64, 64), token)
    with pytest.raises(ValueError, match="cells must be"):
        refiner(emb, logits, token, cells=torch.ones(1, 8, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match="expand_ratio must be positive"):
        refiner(emb, logits, token, expand_ratio=(0.0, 1.0))
