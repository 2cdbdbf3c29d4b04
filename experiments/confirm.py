"""The pre-registered confirmation runs (issue 19): the plan, its driver and its verdicts.

    .venv/bin/python experiments/confirm.py run       # run (or continue) the whole plan, two jobs at a time
    .venv/bin/python experiments/confirm.py status    # which jobs are done, running, waiting or failed
    .venv/bin/python experiments/confirm.py report    # the verdicts: experiments/results/confirm/report.md
    .venv/bin/python experiments/confirm.py commands  # the plan's exact commands

The plan (``PLAN``) is a list of jobs, each an experiment script's command with the pre-registered
settings of ``experiments/results/SMALL_SCALE.md`` ("Pre-registration"). ``run`` is idempotent: a
job whose ``results.json`` exists is done; a job that was cut resumes (its training runs continue
from their last checkpoint, its evaluation rows already computed are read back). Logs go to
``experiments/cache/confirm_logs/``. The verdicts follow the pre-registered rules (``verdicts``).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

RESULTS = common.ROOT / "results"
SAM_REF_LOSS = "--mask-loss bce --lfr-patch 128 --patch-dice 1 --patch-refined 1"


@dataclass(frozen=True)
class Scale:
    """A plan's sizes. ``tag`` names its outputs: ``results/<script>/<tag>/seedK`` per run,
    ``results/<tag>/`` for the verdicts, ``cache/<tag>_logs/`` for the logs. ``design``: extra
    flags for every command (the base's design, the device)."""

    tag: str
    seeds: tuple[int, ...]
    family: int
    scenes: int
    base_steps: int
    decoder_steps: int
    focsam_steps: int
    sam_ref_steps: int
    stable_steps: int
    design: str = ""
    base_threads: int = 2
    slots: int = 2
    results: Path = RESULTS

    @property
    def logs(self) -> Path:
        return common.CACHE / f"{self.tag}_logs"

    @property
    def common(self) -> str:
        return (f"--base-steps {self.base_steps} --base-seed 0 --test-family {self.family} --test-scenes {self.scenes} "
                f"--keep-weights {self.design}").strip()

    def out(self, script: str, seed: int) -> str:
        """A run's folder, relative to the checkout for the committed results."""
        folder = self.results / script / self.tag / f"seed{seed}"
        return folder.relative_to(common.ROOT.parent).as_posix() if self.results == RESULTS else str(folder)


# The pre-registered confirmation plan (SMALL_SCALE.md, "Pre-registration").
CONFIRM = Scale("confirm", (0, 1, 2), 3000, 200, base_steps=3000, decoder_steps=1826, focsam_steps=1200,
                sam_ref_steps=1200, stable_steps=3000, base_threads=1)


@dataclass
class Job:
    """One command of the plan: done when ``out/results.json`` exists, or (``base``, ``stage1``)
    when their ``prepare`` left ``done``."""

    name: str
    script: str
    args: str
    out: Optional[str] = None
    needs: tuple[str, ...] = ()
    threads: int = 1
    done_file: Optional[Path] = None

    def command(self) -> list[str]:
        argv = [".venv/bin/python", f"experiments/{self.script}", *shlex.split(self.args), "--threads", str(self.threads)]
        return argv + (["--out", self.out] if self.out else [])

    def done(self) -> bool:
        if self.out:
            return (common.ROOT.parent / self.out / "results.json").is_file()
        return self.done_file is not None and self.done_file.is_file()


def plan(scale: Scale = CONFIRM) -> list[Job]:
    """The jobs in priority order (the driver starts the first one whose needs are met)."""
    common_ = scale.common
    focsam = f"--decoder-steps {scale.decoder_steps} --refiner-depth 2"
    jobs = [Job("base", "confirm.py", f"prepare base --tag {scale.tag} {common_}", threads=scale.base_threads,
                done_file=scale.logs / "base.done"),
            Job("stage1", "confirm.py", f"prepare stage1 --tag {scale.tag} {common_} {focsam}", needs=("base",),
                done_file=scale.logs / "stage1.done")]
    for seed in scale.seeds:
        jobs += [
            Job(f"stable-sam-{seed}", "stable_sam_small.py", f"{common_} --method-steps {scale.stable_steps} --seed {seed}",
                scale.out("stable_sam_small", seed), ("base",)),
            Job(f"focsam-{seed}", "focsam_small.py", f"{common_} {focsam} --method-steps {scale.focsam_steps} --seed {seed}",
                scale.out("focsam_small", seed), ("stage1",)),
            Job(f"sam-ref-{seed}", "sam_ref_small.py",
                f"{common_} --method-steps {scale.sam_ref_steps} {SAM_REF_LOSS} --seed {seed}",
                scale.out("sam_ref_small", seed), ("base",)),
        ]
    for seed in scale.seeds:
        jobs.append(Job(f"combinations-{seed}", "combinations.py",
                        f"{common_} {focsam} --focsam-steps {scale.focsam_steps} --sam-ref-steps {scale.sam_ref_steps} "
                        f"{SAM_REF_LOSS} --stable-steps {scale.stable_steps} --seed {seed}",
                        scale.out("combinations", seed),
                        ("stage1", f"stable-sam-{seed}", f"focsam-{seed}", f"sam-ref-{seed}")))
    return jobs


# --------------------------------------------------------------------------------------- driver
def run_plan(scale: Scale = CONFIRM, poll_s: float = 20.0) -> int:
    """Run the pending jobs, ``scale.slots`` threads at a time, needs first; returns 1 if a job
    failed or could not run."""
    jobs, slots, logs = plan(scale), scale.slots, scale.logs
    logs.mkdir(parents=True, exist_ok=True)
    running: dict[str, tuple[subprocess.Popen, Any]] = {}
    failed: set[str] = set()
    while True:
        for name, (proc, handle) in list(running.items()):
            if proc.poll() is not None:
                handle.close()
                del running[name]
                if proc.returncode != 0:
                    failed.add(name)
                    print(f"{time.strftime('%H:%M:%S')} {name} failed ({proc.returncode}); see {logs / name}.log", flush=True)
                else:
                    print(f"{time.strftime('%H:%M:%S')} {name} done", flush=True)
        finished = {j.name for j in jobs if j.done()}
        pending = [j for j in jobs if j.name not in finished and j.name not in running and j.name not in failed]
        blocked = [j for j in pending if any(n in failed for n in j.needs)]
        ready = [j for j in pending if j not in blocked and all(n in finished for n in j.needs)]
        threads = {j.name: j.threads for j in jobs}
        while ready and ready[0].threads + sum(threads[n] for n in running) <= slots:
            job = ready.pop(0)
            handle = open(logs / f"{job.name}.log", "a")
            handle.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {shlex.join(job.command())}\n")
            handle.flush()
            proc = subprocess.Popen([sys.executable, *job.command()[1:]], cwd=common.ROOT.parent, stdout=handle,
                                    stderr=subprocess.STDOUT,
                                    env={**__import__("os").environ, "OMP_NUM_THREADS": str(job.threads)})
            running[job.name] = (proc, handle)
            print(f"{time.strftime('%H:%M:%S')} started {job.name}", flush=True)
        if not running:
            left = [j.name for j in jobs if not j.done()]
            print(f"{time.strftime('%H:%M:%S')} plan finished; not done: {left or 'none'}", flush=True)
            return 1 if left else 0
        time.sleep(poll_s)


def prepare(argv: list[str]) -> int:
    """The ``base`` and ``stage1`` jobs: the shared base (and its embedding store), or FocSAM's
    stage 1 on it, trained (or found) and kept, with the experiment scripts' settings."""
    import focsam_small

    parser = argparse.ArgumentParser(prog="confirm.py prepare")
    parser.add_argument("what", choices=("base", "stage1"))
    parser.add_argument("--tag", default=CONFIRM.tag, help="the plan (its logs folder)")
    common.add_common_arguments(parser, "unused", 0, 0)
    parser.add_argument("--decoder-steps", type=int, default=focsam_small.DECODER_STEPS)
    parser.add_argument("--decoder-lr", type=float, default=1e-4)
    parser.add_argument("--max-clicks", type=int, default=10)
    parser.add_argument("--refiner-depth", type=int, default=2)
    parser.add_argument("--keep-weights", action="store_true")
    args = parser.parse_args(argv)
    ctx = common.prepare(args)
    if args.what == "stage1":
        focsam_small.stage1_part(ctx, args.decoder_steps, 0, args.decoder_lr, args.max_clicks)
    logs = common.CACHE / f"{args.tag}_logs"
    logs.mkdir(parents=True, exist_ok=True)
    (logs / f"{args.what}.done").write_text("")
    return 0


def status(scale: Scale = CONFIRM) -> int:
    for job in plan(scale):
        log = scale.logs / f"{job.name}.log"
        state = "done" if job.done() else ("started" if log.is_file() else "waiting")
        last = ""
        if log.is_file() and not job.done():
            lines = [line for line in log.read_text().splitlines() if line.strip()]
            last = lines[-1][-110:] if lines else ""
        print(f"{job.name:18s} {state:8s} {last}")
    return 0


# ------------------------------------------------------------------------------------- verdicts
def _load(scale: Scale, script: str, seed: int) -> Optional[dict]:
    path = scale.results / script / scale.tag / f"seed{seed}" / "results.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _rule(values: list[float]) -> dict[str, Any]:
    """The pre-registered rule on one number per seed: mean > 2 SE across seeds and every seed > 0."""
    stats = common.across_seeds(values)
    stats["holds"] = bool(stats["mean"] > 2 * stats["se"] and all(v > 0 for v in values))
    return stats


def _paired(a, b) -> dict:
    return common.paired_difference(np.asarray(a, dtype=float), np.asarray(b, dtype=float))


def stable_sam_verdict(runs: list[dict]) -> dict[str, Any]:
    per_type = {t: [_paired(r["results"]["sam"][t]["per_scene_miou"], r["results"]["stable-sam"][t]["per_scene_miou"])
                    for r in runs] for t in ("noisy_box", "point1", "point3", "gt_box")}
    rules = {t: _rule([d["mean"] for d in ds]) for t, ds in per_type.items()}
    gt = rules["gt_box"]
    kept = bool(gt["mean"] > -2 * gt["se"])
    return {"per_seed": per_type, "across_seeds": rules, "gt_box_kept": kept,
            "confirmed": rules["noisy_box"]["holds"] and rules["point1"]["holds"] and kept}


def focsam_verdict(runs: list[dict]) -> dict[str, Any]:
    def curves(r, row):
        return np.asarray(r["results"][row]["per_scene_iou"])

    primary = [_paired(curves(r, "sam").mean(1), curves(r, "focsam").mean(1)) for r in runs]
    refiner = [_paired(curves(r, "focsam, refiner off")[:, 1:].mean(1), curves(r, "focsam")[:, 1:].mean(1))
               for r in runs]
    over_decoder = [_paired(curves(r, "decoder")[:, 1:].mean(1), curves(r, "focsam")[:, 1:].mean(1)) for r in runs]
    p, q = _rule([d["mean"] for d in primary]), _rule([d["mean"] for d in refiner])
    noc = {row: float(np.mean([r["results"][row]["noc"]["90"] for r in runs]))
           for row in ("sam", "decoder", "focsam, refiner off", "focsam")}
    verdict = "confirmed" if p["holds"] and q["holds"] else ("stage 1 only" if p["holds"] else "not confirmed")
    return {"per_seed": {"vs base, clicks 1-20": primary, "refiner, clicks 2-20": refiner,
                         "vs stage-1 decoder, clicks 2-20": over_decoder},
            "across_seeds": {"vs base, clicks 1-20": p, "refiner, clicks 2-20": q,
                             "vs stage-1 decoder, clicks 2-20": common.across_seeds([d["mean"] for d in over_decoder])},
            "noc90_mean_over_seeds": noc, "verdict": verdict}


def sam_ref_verdict(runs: list[dict]) -> dict[str, Any]:
    five = [_paired(np.asarray(r["results"]["sam"]["per_scene_iou"])[:, 4],
                    np.asarray(r["results"]["sam-ref"]["per_scene_iou"])[:, 4]) for r in runs]
    rule = _rule([d["mean"] for d in five])
    biou = float(np.mean([r["results"]["sam-ref"]["boundary_iou_1to5"] - r["results"]["sam"]["boundary_iou_1to5"]
                          for r in runs]))
    noc = float(np.mean([r["results"]["sam-ref"]["noc"]["90"] - r["results"]["sam"]["noc"]["90"] for r in runs]))
    return {"per_seed": {"5-mIoU": five}, "across_seeds": {"5-mIoU": rule}, "biou_1to5_gain": biou,
            "noc90_change": noc, "confirmed": rule["holds"] and biou > 0 and noc < 0}


def combinations_verdict(runs: list[dict]) -> dict[str, Any]:
    import combinations

    out = {}
    per_seed = [combinations.additivity(r["results"]) for r in runs]
    for combo in combinations.COMBINATIONS:
        gain = _rule([a[combo]["gain"]["mean"] for a in per_seed])
        best = _rule([a[combo]["over_best_part"]["mean"] for a in per_seed])
        inter = common.across_seeds([a[combo]["interaction"]["mean"] for a in per_seed])
        kind = ("super-additive" if inter["mean"] > 2 * inter["se"] else
                "sub-additive" if inter["mean"] < -2 * inter["se"] else "additive (within 2 SE)")
        out[combo] = {"gain": gain, "over_best_part": best, "interaction": inter, "additivity": kind,
                      "per_seed": [a[combo] for a in per_seed]}
    return out


VERDICTS = {"stable_sam_small": stable_sam_verdict, "focsam_small": focsam_verdict, "sam_ref_small": sam_ref_verdict,
            "combinations": combinations_verdict}


def verdicts(scale: Scale = CONFIRM) -> dict[str, Any]:
    """Every experiment's verdict; it needs the runs of all the plan's seeds (else "incomplete")."""
    out: dict[str, Any] = {}
    for script, rule in VERDICTS.items():
        runs = [_load(scale, script, s) for s in scale.seeds]
        present = [s for s, r in zip(scale.seeds, runs) if r is not None]
        complete = len(present) == len(scale.seeds) >= 2
        out[script] = {"seeds": present, **(rule(runs) if complete else {"verdict": "incomplete"})}
    return out


def _seed_values(stats: list[dict]) -> str:
    return ", ".join(f"{d['mean']:+.4f} ± {d['se']:.4f}" for d in stats)


def _across(stats: dict) -> str:
    return f"{stats['mean']:+.4f} ± {stats['se']:.4f}"


def write_report(found: dict[str, Any], scale: Scale = CONFIRM) -> Path:
    """``results/<tag>/report.md`` and ``verdicts.json`` from the verdicts; returns the folder."""
    pre_registered = dataclasses.replace(scale, results=RESULTS) == CONFIRM  # wherever its results are read from
    lines = [f"# {'Confirmation runs' if pre_registered else f'Plan `{scale.tag}`'}: the pre-registered verdicts", "",
             f"The rules pre-registered in `experiments/results/SMALL_SCALE.md` (\"Pre-registration\"); seeds "
             f"{list(scale.seeds)} of each method on one base (base seed 0), {scale.scenes} held-out scenes of family "
             f"{scale.family}. Per seed: the paired "
             "difference over scenes (± its standard error over scenes); across seeds: mean ± standard error of the "
             "per-seed differences. A rule holds when that mean exceeds 2 SE and every seed's difference is "
             "positive. Written by `experiments/confirm.py report` from the runs' results.json.", ""]
    s = found["stable_sam_small"]
    lines += ["## Stable-SAM (prompt protocol, mIoU per prompt type, Stable-SAM − base)", ""]
    if "per_seed" in s:
        lines += ["| prompt | per seed | across seeds | rule |", "|---|---|---|---|"]
        for t, ds in s["per_seed"].items():
            lines.append(f"| {t} | {_seed_values(ds)} | {_across(s['across_seeds'][t])} | "
                         f"{'holds' if s['across_seeds'][t]['holds'] else 'fails'} |")
        lines += ["", f"GT box kept (mean > −2 SE): {s['gt_box_kept']}. **Verdict: "
                  f"{'confirmed' if s['confirmed'] else 'not confirmed'}.**", ""]
    else:
        lines += [f"Incomplete: seeds {s['seeds']} finished.", ""]
    f = found["focsam_small"]
    lines += ["## FocSAM (click protocol, per-scene IoU averaged over clicks)", ""]
    if "per_seed" in f:
        lines += ["| difference | per seed | across seeds | rule |", "|---|---|---|---|"]
        for name, ds in f["per_seed"].items():
            rule = f["across_seeds"][name]
            lines.append(f"| {name} | {_seed_values(ds)} | {_across(rule)} | "
                         f"{('holds' if rule['holds'] else 'fails') if 'holds' in rule else '(reported)'} |")
        noc = ", ".join(f"{k} {v:.2f}" for k, v in f["noc90_mean_over_seeds"].items())
        lines += ["", f"NoC@90, mean over seeds: {noc}. **Verdict: {f['verdict']}.**", ""]
    else:
        lines += [f"Incomplete: seeds {f['seeds']} finished.", ""]
    r = found["sam_ref_small"]
    lines += ["## SAM-REF (click protocol, IoU at click 5, SAM-REF − base)", ""]
    if "per_seed" in r:
        rule = r["across_seeds"]["5-mIoU"]
        lines += [f"Per seed: {_seed_values(r['per_seed']['5-mIoU'])}; across seeds {_across(rule)} "
                  f"({'holds' if rule['holds'] else 'fails'}). Boundary IoU (clicks 1-5) gain, mean over seeds "
                  f"{r['biou_1to5_gain']:+.4f}; NoC@90 change {r['noc90_change']:+.2f}. **Verdict: "
                  f"{'confirmed' if r['confirmed'] else 'not confirmed'}.**", ""]
    else:
        lines += [f"Incomplete: seeds {r['seeds']} finished.", ""]
    c = found["combinations"]
    lines += ["## Combinations (click protocol, per-scene IoU averaged over clicks 1-20)", ""]
    if "seeds" in c and c.get("verdict") == "incomplete":
        lines += [f"Incomplete: seeds {c['seeds']} finished.", ""]
    else:
        lines += ["| combination | gain over reference | over its best part | interaction | additivity |",
                  "|---|---|---|---|---|"]
        for combo, v in c.items():
            if combo == "seeds":
                continue
            lines.append(f"| {combo} | {_across(v['gain'])} ({'holds' if v['gain']['holds'] else 'fails'}) | "
                         f"{_across(v['over_best_part'])} ({'holds' if v['over_best_part']['holds'] else 'fails'}) | "
                         f"{_across(v['interaction'])} | {v['additivity']} |")
        lines.append("")
    out = scale.results / scale.tag
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text("\n".join(lines) + "\n")
    (out / "verdicts.json").write_text(json.dumps(found, indent=1) + "\n")
    return out


def main(argv: list[str] | None = None, scale: Scale = CONFIRM) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv.pop(0) if argv else "status"
    if command == "run":
        return run_plan(scale)
    if command == "prepare":
        return prepare(argv)
    if command == "status":
        return status(scale)
    if command == "report":
        out = write_report(verdicts(scale), scale)
        print((out / "report.md").read_text())
        return 0
    if command == "commands":
        for job in plan(scale):
            print(shlex.join(job.command()))
        return 0
    raise SystemExit(f"unknown command {command!r}: run, status, report, commands or prepare")


if __name__ == "__main__":
    sys.exit(main())
