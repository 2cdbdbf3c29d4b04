"""Summaries, tables and plots of evaluation runs.

``write_run_report(run_dir)`` turns a run folder's JSONL logs into ``summary.json``, ``results.md``
(the columns of the published tables: NoC@85/90/95, NoF@90/95, 5-mIoU, SPC; or mIoU, boundary
mIoU and stability per prompt type) and ``miou.png`` (mIoU against the number of clicks).
``write_comparison`` does the same for several runs in one table and one plot.
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from clicksam.io.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text

from .metrics import summarize_click_ious
from .runner import ResultLog, read_run_config

__all__ = ["summarize_run", "summarize_click_records", "summarize_prompt_records", "markdown_table",
           "plot_miou_curves", "write_run_report", "write_comparison"]


def summarize_click_records(records: Sequence[dict[str, Any]], max_clicks: int) -> dict[str, Any]:
    """Click-protocol metrics of one dataset's records (see :func:`clicksam.eval.metrics.summarize_click_ious`),
    plus ``spc`` (click-loop seconds per click), ``spc_with_encoder`` and boundary mIoU@k if recorded."""
    if not records:
        raise ValueError("no records to summarise")
    summary = summarize_click_ious([r["ious"] for r in records], max_clicks)
    clicks = sum(int(r["n_clicks"]) for r in records)
    loop_seconds = sum(float(r["seconds"]) for r in records)
    encode_seconds = sum(float(r.get("encode_seconds", 0.0)) for r in records)
    summary["clicks_run"] = clicks
    summary["spc"] = loop_seconds / clicks if clicks else None
    summary["spc_with_encoder"] = (loop_seconds + encode_seconds) / clicks if clicks else None
    summary["seconds"] = loop_seconds + encode_seconds
    if all("boundary_ious" in r for r in records):
        matrix = np.asarray([r["boundary_ious"][:max_clicks] for r in records], dtype=np.float64)
        summary["boundary_miou"] = [float(v) for v in matrix.mean(axis=0)]
    return summary


def summarize_prompt_records(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Prompt-protocol metrics per prompt type: mIoU, boundary mIoU, mean stability (over objects)."""
    if not records:
        raise ValueError("no records to summarise")
    types: list[str] = list(records[0]["prompts"])
    result: dict[str, Any] = {"num_objects": len(records), "types": {}}
    for prompt_type in types:
        entries = [r["prompts"][prompt_type] for r in records]
        ious = np.concatenate([e["ious"] for e in entries])
        boundaries = np.concatenate([e["boundary_ious"] for e in entries])
        stabilities = [e["stability"] for e in entries if e.get("stability") is not None]
        result["types"][prompt_type] = {
            "miou": float(ious.mean()),
            "boundary_miou": float(boundaries.mean()),
            "stability": float(np.mean(stabilities)) if stabilities else None,
            "num_predictions": int(ious.size),
        }
    steps = sum(int(r["n_steps"]) for r in records)
    result["seconds_per_prompt"] = sum(float(r["seconds"]) for r in records) / steps if steps else None
    return result


def summarize_run(run_dir: str | Path) -> dict[str, Any]:
    """Summary of every dataset of a run folder (partial runs summarise the objects done so far)."""
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    datasets: dict[str, Any] = {}
    for name in config.get("datasets", []):
        records = ResultLog(run_dir / f"{name}.jsonl").read()
        if not records:
            continue
        if config["protocol"] == "prompts":
            summary = summarize_prompt_records(records)
        else:
            summary = summarize_click_records(records, int(config["max_clicks"]))
        expected = config.get("objects", {}).get(name)
        summary["complete"] = expected is None or len(records) >= expected
        datasets[name] = summary
    return {"run": run_dir.name, "path": str(run_dir), "protocol": config["protocol"],
            "method": _method_label(config), "config": config, "datasets": datasets}


def _method_label(config: dict[str, Any]) -> str:
    seg = config.get("segmenter", {})
    label = seg.get("method") or seg.get("segmenter", "?")
    model = config.get("model")
    if model and config.get("random_weights"):
        model = f"{model}, random weights"
    return f"{label} ({model})" if model else str(label)


STANDARD_MAX_CLICKS = 20  # the published tables' click cap (SPEC 7.2)


def click_caps(summaries: Sequence[dict[str, Any]]) -> list[int]:
    """The distinct click caps (``--max-clicks``) of the click-protocol runs among ``summaries``."""
    return sorted({int(s["max_clicks"]) for summary in summaries if summary["protocol"] == "clicks"
                   for s in summary["datasets"].values()})


def _noc_cell(value: Any, cap: int) -> str:
    """NoC as a table cell. With one click NoC is 1 whatever the IoU, so it is "n/a"; any cap other
    than the standard 20 is shown beside the value, which is not comparable with published NoC."""
    if cap == 1:
        return "n/a"
    return _fmt(value) if cap == STANDARD_MAX_CLICKS else f"{_fmt(value)} (≤{cap})"


def _click_notes(caps: list[int]) -> str:
    cap = " or ".join(str(c) for c in caps)
    notes = (f"\nNoC@t: mean clicks to reach IoU t ({cap} if never); NoF@t: objects never "
             f"reaching t in {cap} clicks; 5-mIoU: mIoU after 5 clicks (%); SPC: seconds per click of the click loop, "
             "encoder excluded.")
    if 1 in caps:
        notes += " NoC is n/a for a 1-click run (it would be 1 whatever the IoU)."
    if any(c != STANDARD_MAX_CLICKS for c in caps):
        notes += f" Published NoC use {STANDARD_MAX_CLICKS} clicks: a different cap is shown as (≤N)."
    if len(caps) > 1:
        warning = mixed_caps_warning(caps)
        notes += f"\n\n**{warning[0].upper()}{warning[1:]}.**"
    return notes + "\n"


def mixed_caps_warning(caps: Sequence[int]) -> str:
    """The warning for a table that mixes click caps."""
    return (f"these runs use different click caps ({', '.join(str(c) for c in caps)}): "
            "their NoC and NoF are not comparable")


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return f"{float(value):.{digits}f}"


def markdown_table(summaries: Sequence[dict[str, Any]]) -> str:
    """One Markdown table of several run summaries (rows: run x dataset [x prompt type])."""
    click_rows, prompt_rows = [], []
    for summary in summaries:
        for dataset, s in summary["datasets"].items():
            name = summary["run"] + ("" if s.get("complete", True) else " (partial)")
            if summary["protocol"] == "prompts":
                for prompt_type, t in s["types"].items():
                    prompt_rows.append(f"| {name} | {summary['method']} | {dataset} | {prompt_type} | "
                                       f"{s['num_objects']} | {_fmt(100 * t['miou'], 1)} | "
                                       f"{_fmt(100 * t['boundary_miou'], 1)} | "
                                       f"{_fmt(None if t['stability'] is None else 100 * t['stability'], 1)} |")
            else:
                noc, nof, cap = s["noc"], s["nof"], int(s["max_clicks"])
                click_rows.append(
                    f"| {name} | {summary['method']} | {dataset} | {s['num_objects']} | "
                    f"{_noc_cell(noc.get('85'), cap)} | {_noc_cell(noc.get('90'), cap)} | "
                    f"{_noc_cell(noc.get('95'), cap)} | {_fmt(nof.get('90'))} | "
                    f"{_fmt(nof.get('95'))} | {_fmt(None if s['5-miou'] is None else 100 * s['5-miou'])} | "
                    f"{_fmt(s['spc'], 3)} |")
    parts = []
    if click_rows:
        parts.append("| Run | Method | Dataset | Objects | NoC@85 | NoC@90 | NoC@95 | NoF@90 | NoF@95 | "
                     "5-mIoU | SPC (s) |\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
                     + "\n".join(click_rows))
    if prompt_rows:
        parts.append("| Run | Method | Dataset | Prompt | Objects | mIoU | boundary mIoU | Stability |\n"
                     "|---|---|---|---|---:|---:|---:|---:|\n" + "\n".join(prompt_rows))
    if not parts:
        return "No finished objects yet.\n"
    return "\n\n".join(parts) + "\n" + (_click_notes(click_caps(summaries)) if click_rows else "")


def plot_miou_curves(summaries: Sequence[dict[str, Any]], path: str | Path) -> Path | None:
    """PNG of mIoU against clicks, one panel per dataset, one line per run; None for prompt runs only."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets: list[str] = []
    for summary in summaries:
        if summary["protocol"] != "clicks":
            continue
        datasets += [d for d in summary["datasets"] if d not in datasets]
    if not datasets:
        return None
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.2 * len(datasets), 3.6), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        longest = 1
        for summary in summaries:
            s = summary["datasets"].get(dataset) if summary["protocol"] == "clicks" else None
            if s is None:
                continue
            clicks = np.arange(1, len(s["miou"]) + 1)
            longest = max(longest, len(clicks))
            ax.plot(clicks, 100 * np.asarray(s["miou"]), marker="o", markersize=3,
                    label=f"{summary['run']}: {summary['method']}")
        ax.set_title(dataset)
        ax.set_xlabel("number of clicks")
        ax.set_ylabel("mIoU (%)")
        ax.set_xticks([1, *range(5, longest + 1, 5)] if longest >= 10 else list(range(1, longest + 1)))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())


def write_run_report(run_dir: str | Path) -> dict[str, Path]:
    """Write ``summary.json``, ``results.md`` and (click protocol) ``miou.png`` into the run folder."""
    run_dir = Path(run_dir)
    summary = summarize_run(run_dir)
    outputs = {"summary": atomic_write_json(run_dir / "summary.json", summary),
               "table": atomic_write_text(run_dir / "results.md", f"# {run_dir.name}\n\n" + markdown_table([summary]))}
    plot = plot_miou_curves([summary], run_dir / "miou.png")
    if plot is not None:
        outputs["plot"] = plot
    return outputs


def write_comparison(run_dirs: Sequence[str | Path], out_dir: str | Path) -> dict[str, Path]:
    """One table (``comparison.md``), one plot (``comparison.png``) and ``comparison.json`` for several runs."""
    if not run_dirs:
        raise ValueError("give at least one run folder")
    summaries = [summarize_run(d) for d in run_dirs]
    names = [s["run"] for s in summaries]
    if len(set(names)) != len(names):  # same folder names in different places: use the paths
        for s in summaries:
            s["run"] = s["path"]
    out_dir = Path(out_dir)
    table = markdown_table(summaries)
    outputs = {"table": atomic_write_text(out_dir / "comparison.md", "# Comparison\n\n" + table),
               "summary": atomic_write_json(out_dir / "comparison.json", {"runs": summaries})}
    plot = plot_miou_curves(summaries, out_dir / "comparison.png")
    if plot is not None:
        outputs["plot"] = plot
    return outputs


def load_summary(path: str | Path) -> dict[str, Any]:
    """Read a ``summary.json`` written by :func:`write_run_report`."""
    return json.loads(Path(path).read_text(encoding="utf-8"))
