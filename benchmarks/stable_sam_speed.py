"""Per-click cost of Stable-SAM's plugin vs plain SAM decoding (issue 5; goal ≤ 1.10×).

Two measurements on the same model, in the same run, alternating plain and plugged calls so that
machine load hits both alike; each reports the median over ``--repeats`` rounds:

- ``decoder``: ``Sam.decode`` for one click with the previous low-res logits (single-mask
  output), the part of a click the plugin changes;
- ``session``: one ``InteractiveSession.add_click`` (prompt encoder, decoder, upsampling to the
  image size), what a user waits for once the embedding is cached.

It also counts the multiply-accumulates of one decode with and without the plugin
(``torch.utils.flop_counter``): their ratio is the overhead a perfectly efficient implementation
of the paper's DSP + DRP would still have (the DSP's dense 256→256 ``proj`` over the 64×64 grid
alone is 268 M of them), the floor the measured ratio should be read against.

The mask decoder is the same for ViT-B/L/H, so the ``tiny`` config (SAM's full decoder on a
64×64 embedding) with random weights stands in for all of them; the encoder runs once per image
and is not timed.

    .venv/bin/python benchmarks/stable_sam_speed.py --repeats 30 --threads 2 --json out.json
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from clicksam import InteractiveSession, SamPredictor, build_sam
from clicksam.methods.stable_sam import decoder_hooks
from clicksam.models.hooks import DecoderHooks


def time_call(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def later_click(model):
    """``decode(plugin)``: one later click (three points, previous logits, single-mask output)
    on a fixed random embedding, plain or through the plugin."""
    gen = torch.Generator().manual_seed(0)
    embedding = torch.randn(1, 256, 64, 64, generator=gen)
    points = (torch.tensor([[[400.0, 300.0], [520.0, 610.0], [100.0, 90.0]]]), torch.tensor([[1, 1, 0]]))
    mask_input = torch.randn(1, 1, 256, 256, generator=gen)
    hooks = {False: DecoderHooks(), True: decoder_hooks(model.stable_sam)}
    return lambda plugin: model.decode(embedding, points, mask_input=mask_input, multimask_output=False,
                                       hooks=hooks[plugin])


def bench_decoder(model, repeats: int) -> dict[str, float]:
    decode = later_click(model)
    return alternate(lambda: decode(False), lambda: decode(True), repeats)


def count_macs(model) -> dict[str, float]:
    """Multiply-accumulates (millions) of one later-click decode, plain and with the plugin."""
    from torch.utils.flop_counter import FlopCounterMode

    decode = later_click(model)
    macs = {}
    for name, plugin in (("sam", False), ("stable_sam", True)):
        decode(plugin)
        with FlopCounterMode(display=False) as counter:  # after a warm-up call: cached PE projections
            decode(plugin)
        macs[f"{name}_mmac"] = counter.get_total_flops() / 2e6
    macs["ratio"] = macs["stable_sam_mmac"] / macs["sam_mmac"]
    return macs


def bench_session(predictor, repeats: int) -> dict[str, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        sessions = {m: InteractiveSession(predictor, method=m) for m in ("sam", "stable-sam")}
    for s in sessions.values():  # a first click so that timed clicks carry previous logits
        s.add_click(300, 200)
    clicks = [(300 + 7 * (k % 11), 200 + 5 * (k % 13), k % 3 != 2) for k in range(repeats + 2)]

    def click(method: str):
        s = sessions[method]
        state = {"k": 0}

        def run():
            x, y, positive = clicks[state["k"]]
            state["k"] += 1
            s.add_click(x, y, positive)
            s.undo()  # keep every timed click the second one

        return run

    return alternate(click("sam"), click("stable-sam"), repeats)


def alternate(plain, plugged, repeats: int) -> dict[str, float]:
    """Warm up both, then run them alternately (order flipped every round); medians in seconds."""
    for _ in range(2):
        plain(), plugged()
    a, b = [], []
    for r in range(repeats):
        if r % 2 == 0:
            a.append(time_call(plain)); b.append(time_call(plugged))
        else:
            b.append(time_call(plugged)); a.append(time_call(plain))
    ratios = [y / x for x, y in zip(a, b)]
    return {"sam_s": statistics.median(a), "stable_sam_s": statistics.median(b),
            "ratio_of_medians": statistics.median(b) / statistics.median(a),
            "median_paired_ratio": statistics.median(ratios)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        raise ValueError("--repeats must be >= 1")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_sam("tiny", methods=["stable-sam"])
    with torch.inference_mode():
        macs = count_macs(model)
        decoder = bench_decoder(model, args.repeats)
        predictor = SamPredictor(model)
        rng = np.random.default_rng(0)
        predictor.set_image(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8))
        session = bench_session(predictor, args.repeats)
    results = {"decoder": decoder, "session": session, "macs": macs, "repeats": args.repeats, "threads": args.threads,
               "torch": torch.__version__, "cpu": platform.processor() or platform.machine()}
    for name in ("decoder", "session"):
        r = results[name]
        print(f"{name:8s} sam {1000 * r['sam_s']:7.1f} ms   stable-sam {1000 * r['stable_sam_s']:7.1f} ms   "
              f"ratio {r['ratio_of_medians']:.3f} (median paired {r['median_paired_ratio']:.3f})")
    print(f"MACs     sam {macs['sam_mmac']:7.0f} M    stable-sam {macs['stable_sam_mmac']:7.0f} M    "
          f"ratio {macs['ratio']:.3f} (the floor for an implementation of the paper's plugin)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
