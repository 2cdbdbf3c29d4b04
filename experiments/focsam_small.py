"""Small-scale evidence for FocSAM (issue 6) on synthetic scenes.

1. The shared base (``experiments/common.py``): a tiny SAM at a 256-px frame trained from scratch
   with SAM's prompt mix, iterative single-mask clicks with the previous logits fed back included
   (the role of FocSAM's stage 1, the fine-tuned decoder); trained once and cached under
   ``experiments/cache/`` (trained now when the cache file is missing).
2. Freeze it, attach a FocusRefiner scaled to the frame (embedding 16×16 at frame 256, so
   4×4-cell windows: the same 4×4 window grid as 16×16 windows on 64×64), and train it with the
   real training method (``FocSamTraining.compute_loss``) on precomputed embeddings.
3. On held-out scenes (another seed family), run the click protocol (SPEC §7.1, 20 clicks) with
   ``method="sam"`` and ``"focsam"`` through ``InteractiveSession`` on the same base, and report
   NoC@85/90, NoF@90 and the mIoU@k curve.

Writes ``report.md``, ``results.json`` and ``focsam_small.png`` under ``--out``.

    .venv/bin/python experiments/focsam_small.py
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from clicksam.methods.focsam import FocusRefiner  # noqa: E402
from clicksam.methods.focsam.training import FocSamTraining  # noqa: E402

METHODS = ("sam", "focsam")
KS = (1, 2, 3, 5, 10, 20)


@torch.no_grad()
def identity_start(refiner: FocusRefiner) -> None:
    """Start the refiner at F_r = F: ``embed_proj`` the identity and every block's residual conv
    branch scaled by γ2 = 0 (``cls2img``). FocSAM's own init (random ``embed_proj``, γ = 1) is
    meant for 160k iterations; a few hundred CPU steps cannot first undo a random projection of
    the embedding. All parameters still train (γ2 gets gradient at once)."""
    dim = refiner.embed_proj.weight.shape[0]
    refiner.embed_proj.weight.copy_(torch.eye(dim).view(dim, dim, 1, 1))
    refiner.embed_proj.bias.zero_()
    for block in refiner.blocks:
        block.cls2img.gamma2.zero_()


def plot(out: Path, results: dict, base_hist: list[float], method_hist: list[float]) -> None:
    plt = common.pyplot()
    fig, (ax0, ax1, ax2) = plt.subplots(1, 3, figsize=(15, 4))
    for method in METHODS:
        curve = results[method]["miou"]
        ax0.plot(np.arange(1, len(curve) + 1), curve, marker="o", ms=3,
                 label="SAM (frozen base)" if method == "sam" else "FocSAM")
    ax0.set_xlabel("clicks")
    ax0.set_ylabel("mIoU")
    ax0.set_title("held-out synthetic scenes, click protocol")
    ax0.legend()
    common.finish_figure(fig, ax1, ax2, base_hist, method_hist, "FocusRefiner", out / "focsam_small.png")


def write_report(out: Path, saved: dict) -> None:
    results, info, args = saved["results"], saved["info"], saved["args"]
    rows = [f"| {m} | {results[m]['noc']['85']:.2f} | {results[m]['noc']['90']:.2f} | {results[m]['nof']['90']} | "
            + " | ".join(f"{results[m]['miou'][k - 1]:.4f}" for k in KS) + " |" for m in METHODS]
    a, b = results["sam"], results["focsam"]
    better_noc = b["noc"]["90"] < a["noc"]["90"]
    curve_gain = float(np.mean(b["miou"]) - np.mean(a["miou"]))
    verdict = ("consistent with the paper" if better_noc and curve_gain > 0 else "not reproduced at this scale")
    per_scene = {m: np.asarray(results[m]["per_scene_iou"]) for m in METHODS}
    paired = common.describe_difference(common.paired_difference(per_scene["sam"].mean(1), per_scene["focsam"].mean(1)))
    paired_after = common.describe_difference(common.paired_difference(per_scene["sam"][:, 1:].mean(1),
                                                                       per_scene["focsam"][:, 1:].mean(1)))
    r_start, r_end = common.loss_span(saved["method_loss"])
    earlier = common.other_runs(out, {"base_recipe3": "session 2: the recipe-3 base (15 min, no single-mask loss on lone clicks), 30 test scenes, refiner depth 6; its own `paper_init/` run used `--refiner-init focsam`"})
    text = f"""# FocSAM small-scale experiment

**Verdict: {verdict}.** NoC@90 {a['noc']['90']:.2f} → {b['noc']['90']:.2f}; mIoU averaged over clicks 1-20
{np.mean(a['miou']):.4f} → {np.mean(b['miou']):.4f} ({curve_gain:+.4f}).
Paired over scenes, IoU averaged over clicks 1-20: {paired};
over clicks 2-20 (after the refocus): {paired_after}.

Synthetic scenes (`clicksam.train.synthetic`); FocSAM's FocusRefiner (depth {args['refiner_depth']}, init
`{args.get('refiner_init', 'focsam')}`,
{info['refiner_params']:,} parameters, window {info['window']} cells) trained on the frozen base with
`FocSamTraining.compute_loss` (refine step drawn as in SPEC §4, NFL + point loss, ≤ {args['max_clicks']}
clicks). Held-out: {args['test_scenes']} scenes of family {common.TEST_SEED + int(args['seed'])} (training used
family {common.TRAIN_SEED + int(args['seed'])}); 20 clicks with the standard clicker (SPEC §7.1) through
`InteractiveSession` (`sam` vs `focsam`, same base and embedding), IoU at the original image size.

| method | NoC@85 | NoC@90 | NoF@90 | mIoU@1 | @2 | @3 | @5 | @10 | @20 |
|---|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

![results](focsam_small.png)

{common.base_summary(saved['base_info'])}

Refiner: {info['ref_steps']} steps in {info['ref_s'] / 60:.1f} min (batch {args['batch']}, AdamW lr
{args['ref_lr']}, weight decay 0.05), loss {r_start:.3f} → {r_end:.3f} (mean of the first/last 50 steps).
{args['threads']} CPU thread(s); evaluation took {info['eval_s']:.0f} s. Command: `{info['command']}`{earlier}"""
    (out / "report.md").write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_common_arguments(parser, "focsam_small", method_minutes=8.0, test_scenes=30)
    parser.add_argument("--ref-lr", type=float, default=3e-4)
    parser.add_argument("--refiner-depth", type=int, default=6, help="FocSAM uses 12; halved for the CPU budget")
    parser.add_argument("--max-clicks", type=int, default=10)
    parser.add_argument("--refiner-init", choices=("identity", "focsam"), default="identity",
                        help="identity: start at F_r = F (see identity_start); focsam: the paper's init")
    args = parser.parse_args(argv)
    if args.report_only:
        common.finish(args.out, None, plot, write_report)
        return 0
    model, base_info, data = common.prepare(args)
    grid = model.prompt_encoder.image_embedding_size[0]
    torch.manual_seed(args.seed)
    window = max(grid // 4, 2)
    model.add_module("focus_refiner", FocusRefiner(depth=args.refiner_depth, window_size=window,
                                                   frame_size=model.image_size))
    if args.refiner_init == "identity":
        identity_start(model.focus_refiner)
    emb = common.precompute_embeddings(model, data)
    method = FocSamTraining(model, {"max_clicks": args.max_clicks, "click_map_size": 4 * grid})
    trained = common.train_method(method, data, emb, args.method_minutes, args.batch, args.ref_lr, args.seed,
                                  weight_decay=0.05)
    model.focus_refiner.clicksam_trained = True
    return common.conclude(
        args, argv, "focsam_small.py", "refiner", "ref", trained, base_info,
        lambda: common.click_protocol(model, METHODS, common.TEST_SEED + args.seed, args.test_scenes),
        lambda: {"window": window, "refiner_params": sum(p.numel() for p in model.focus_refiner.parameters())},
        plot, write_report, trained_module=model.focus_refiner)

if __name__ == "__main__":
    sys.exit(main())
