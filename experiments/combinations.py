"""Small-scale evidence for the combinations (issue 19 item 4): do the methods' gains add up?

From the trained parts of one seed (the same ones the method scripts train and find again, on the
same base), the click protocol (SPEC §7.1, 20 clicks, ``clicksam.eval``) on held-out scenes for:

* on the base: ``sam``, ``stable-sam``, ``sam-ref`` and ``stable-sam+sam-ref``;
* on FocSAM's stage-1 decoder (SPEC §9: combinations that include FocSAM use it, the other stages
  trained against it): ``decoder`` (plain ``sam``), ``focsam``, ``stable-sam`` and ``sam-ref``
  trained on that decoder (rows ``stable-sam @ stage 1``, ``sam-ref @ stage 1``),
  ``stable-sam+focsam``, ``focsam+sam-ref`` and ``stable-sam+focsam+sam-ref``.

Each combination C is compared with its reference R (``sam`` on the base, or the stage-1
``decoder`` for combinations with FocSAM) and with its parts P_i alone against the same R, on the
per-scene IoU averaged over clicks 1-20: gain g = d(·, R), and the interaction
I = g_C − Σ g_i (0 when the gains add up), paired over scenes.

Writes ``report.md``, ``results.json`` and ``combinations.png`` under ``--out`` (a new folder).

    .venv/bin/python experiments/combinations.py --seed 0 --test-family 3000 --out experiments/results/combinations/confirm/seed0
"""
from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
import evaluation  # noqa: E402
import focsam_small  # noqa: E402
import parts  # noqa: E402
import sam_ref_small  # noqa: E402
import stable_sam_small  # noqa: E402

# combination -> (reference row, part rows)
COMBINATIONS = {
    "stable-sam+sam-ref": ("sam", ("stable-sam", "sam-ref")),
    "stable-sam+focsam": ("decoder", ("stable-sam @ stage 1", "focsam")),
    "focsam+sam-ref": ("decoder", ("focsam", "sam-ref @ stage 1")),
    "stable-sam+focsam+sam-ref": ("decoder", ("stable-sam @ stage 1", "focsam", "sam-ref @ stage 1")),
}
ROWS = ("sam", "stable-sam", "sam-ref", "stable-sam+sam-ref", "decoder", "focsam", "stable-sam @ stage 1",
        "sam-ref @ stage 1", "stable-sam+focsam", "focsam+sam-ref", "stable-sam+focsam+sam-ref")


def combined(model: torch.nn.Module, *donors: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` holding also each donor's method modules (its children that are not
    part of SAM), as trained: the parts are combined, nothing is retrained."""
    out = copy.deepcopy(model)
    for donor in donors:
        for name, module in donor.named_children():
            if name not in donor.base_modules:
                out.add_module(name, copy.deepcopy(module))
    return out


def build_rows(ctx: parts.Context, args) -> tuple[dict[str, tuple[torch.nn.Module, str]], dict[str, str]]:
    """Every row's (model, method) from the parts of seed ``args.seed``, and the parts' names."""
    stage1 = focsam_small.stage1_part(ctx, args.decoder_steps, args.stage1_seed, args.decoder_lr, args.max_clicks)
    options = sam_ref_small.training_options(args)
    trained = {
        "stage 1": stage1,
        "refiner": focsam_small.refiner_part(ctx, stage1, args.focsam_steps, args.seed, args.ref_lr,
                                             args.refiner_depth, args.refiner_init, args.max_clicks),
        "stable-sam": stable_sam_small.plugin_part(ctx, None, args.stable_steps, args.seed, args.plugin_lr),
        "sam-ref": sam_ref_small.refiner_part(ctx, None, args.sam_ref_steps, args.seed, args.sam_ref_lr,
                                              args.lfr_patch, options),
        "stable-sam @ stage 1": stable_sam_small.plugin_part(ctx, stage1, args.stable_steps, args.seed, args.plugin_lr),
        "sam-ref @ stage 1": sam_ref_small.refiner_part(ctx, stage1, args.sam_ref_steps, args.seed, args.sam_ref_lr,
                                                        args.lfr_patch, options),
    }
    focsam, plugin, refiners = trained["refiner"].model, trained["stable-sam"].model, trained["sam-ref"].model
    plugin1, refiners1 = trained["stable-sam @ stage 1"].model, trained["sam-ref @ stage 1"].model
    names = {"base": ctx.base_name, **{role: part.name for role, part in trained.items()}}
    return {
        "sam": (ctx.base, "sam"), "stable-sam": (plugin, "stable-sam"), "sam-ref": (refiners, "sam-ref"),
        "stable-sam+sam-ref": (combined(ctx.base, plugin, refiners), "stable-sam+sam-ref"),
        "decoder": (stage1.model, "sam"), "focsam": (focsam, "focsam"),
        "stable-sam @ stage 1": (plugin1, "stable-sam"), "sam-ref @ stage 1": (refiners1, "sam-ref"),
        "stable-sam+focsam": (combined(focsam, plugin1), "stable-sam+focsam"),
        "focsam+sam-ref": (combined(focsam, refiners1), "focsam+sam-ref"),
        "stable-sam+focsam+sam-ref": (combined(focsam, plugin1, refiners1), "stable-sam+focsam+sam-ref"),
    }, names


def scene_means(results: dict) -> dict[str, np.ndarray]:
    """Per row, each scene's IoU averaged over clicks 1-20."""
    return {row: np.asarray(r["per_scene_iou"]).mean(1) for row, r in results.items()}


def additivity(results: dict) -> dict[str, dict]:
    """Per combination: its gain and each part's gain over the reference, the interaction
    (g_C − Σ g_i) and the difference to its best part, all paired over scenes."""
    m = scene_means(results)
    out = {}
    for combo, (ref, members) in COMBINATIONS.items():
        gains = {p: common.paired_difference(m[ref], m[p]) for p in members}
        best = max(members, key=lambda p: gains[p]["mean"])
        expected = m[ref] + sum(m[p] - m[ref] for p in members)
        out[combo] = {"reference": ref, "gain": common.paired_difference(m[ref], m[combo]), "parts": gains,
                      "interaction": common.paired_difference(expected, m[combo]), "best_part": best,
                      "over_best_part": common.paired_difference(m[best], m[combo])}
    return out


def plot(out: Path, results: dict, base_hist: list[float], method_hist: list[float]) -> None:
    plt = common.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    for ax, rows, title in ((axes[0], ROWS[:4], "on the base"), (axes[1], ROWS[4:], "on FocSAM's stage-1 decoder")):
        for row in rows:
            curve = results[row]["miou"]
            ax.plot(np.arange(1, len(curve) + 1), curve, marker="o", ms=3, label=row)
        ax.set_xlabel("clicks")
        ax.set_ylabel("mIoU")
        ax.set_title(f"held-out scenes, {title}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "combinations.png", dpi=100)
    plt.close(fig)


def write_report(out: Path, saved: dict) -> None:
    results, info, args = saved["results"], saved["info"], saved["args"]
    m = scene_means(results)
    rows = [f"| {r} | {results[r]['noc']['85']:.2f} | {results[r]['noc']['90']:.2f} | {results[r]['nof']['90']} | "
            f"{results[r]['miou'][0]:.4f} | {results[r]['5-miou']:.4f} | {m[r].mean():.4f} |" for r in ROWS]
    add = []
    for combo, a in additivity(results).items():
        parts_text = ", ".join(f"{p} {g['mean']:+.4f}" for p, g in a["parts"].items())
        add.append(f"| {combo} | `{a['reference']}` | {a['gain']['mean']:+.4f} ± {a['gain']['se']:.4f} | {parts_text} | "
                   f"{a['interaction']['mean']:+.4f} ± {a['interaction']['se']:.4f} | "
                   f"{a['over_best_part']['mean']:+.4f} ± {a['over_best_part']['se']:.4f} ({a['best_part']}) |")
    text = f"""# Combinations small-scale experiment

Held-out: {args['test_scenes']} scenes of family {common.test_family(args)} (training used family
{common.train_family(args)}); 20 clicks with the standard clicker (SPEC §7.1) through `SamSegmenter`, IoU at the
original image size. The parts are the method scripts' trained parts of seed {args['seed']} on base seed
{args['base_seed']}; combinations with FocSAM sit on its stage-1 decoder, with Stable-SAM and SAM-REF trained
against that decoder (rows `… @ stage 1`). Nothing is retrained for a combination.

| row | NoC@85 | NoC@90 | NoF@90 | mIoU@1 | 5-mIoU | mIoU 1-20 |
|---|---|---|---|---|---|---|
{chr(10).join(rows)}

![results](combinations.png)

**Do the gains add up?** Per-scene IoU averaged over clicks 1-20, paired over scenes (± one standard error):
the combination's gain over its reference, each part's gain over the same reference, the interaction
(combination − reference − Σ part gains: 0 when the gains add up) and the combination against its best part.

| combination | reference | gain | parts' gains | interaction | vs best part |
|---|---|---|---|---|---|
{chr(10).join(add)}

{common.base_summary(saved['base_info'])}

Parts (steps): Stable-SAM {args['stable_steps']}, SAM-REF {args['sam_ref_steps']} (`--mask-loss {args['mask_loss']}`,
`--lfr-patch {args['lfr_patch']}`, `--patch-dice {args['patch_dice']:g}`, `--patch-refined {args['patch_refined']:g}`),
FocSAM stage 1 {args['decoder_steps']} (seed {args['stage1_seed']}), refiner {args['focsam_steps']} (depth
{args['refiner_depth']}, init `{args['refiner_init']}`).{common.seeds_line(args, info)} {args['threads']} CPU thread(s);
evaluation took {info['eval_s']:.0f} s. Command: `{info['command']}`
"""
    (out / "report.md").write_text(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The parts' settings, with the method scripts' defaults."""
    common.add_common_arguments(parser, "combinations", method_steps=0, test_scenes=200)
    parser.add_argument("--stable-steps", type=int, default=stable_sam_small.STEPS)
    parser.add_argument("--plugin-lr", type=float, default=1e-3)
    parser.add_argument("--sam-ref-steps", type=int, default=sam_ref_small.STEPS)
    parser.add_argument("--sam-ref-lr", type=float, default=1e-3)
    parser.add_argument("--max-clicks", type=int, default=10)
    parser.add_argument("--mask-loss", choices=("nfl", "bce"), default="nfl")
    parser.add_argument("--patch-dice", type=float, default=0.0)
    parser.add_argument("--patch-refined", type=float, default=0.0)
    parser.add_argument("--lfr-patch", type=int, default=None)
    parser.add_argument("--decoder-steps", type=int, default=focsam_small.DECODER_STEPS)
    parser.add_argument("--decoder-lr", type=float, default=1e-4)
    parser.add_argument("--stage1-seed", type=int, default=0)
    parser.add_argument("--focsam-steps", type=int, default=focsam_small.STEPS)
    parser.add_argument("--ref-lr", type=float, default=3e-4, help="FocSAM's refiner")
    parser.add_argument("--refiner-depth", type=int, default=2)
    parser.add_argument("--refiner-init", choices=("identity", "focsam"), default="identity")
    parser.add_argument("--keep-weights", action="store_true", help="copy the trained weights to experiments/models/")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    if args.report_only:
        common.finish(args.out, None, plot, write_report)
        return 0
    ctx = common.prepare(args)
    models, names = build_rows(ctx, args)
    trained = {"steps": 0, "seconds": 0.0, "loss": []}

    def details() -> dict:
        return {"additivity": additivity(results_holder["results"]), "parts": names}

    results_holder: dict = {}

    def evaluate() -> dict:
        results_holder["results"] = evaluation.click_rows(models, args.test_family, args.test_scenes)
        return results_holder["results"]

    return common.conclude(args, argv, "combinations.py", "combinations", "combo", trained, ctx.base_info, evaluate,
                           details, plot, write_report)


if __name__ == "__main__":
    sys.exit(main())
