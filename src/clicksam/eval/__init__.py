"""Evaluation of interactive segmentation: the standard click protocol (RITM's, SPEC §7) and
Stable-SAM's prompt-robustness protocol (SPEC §3), on the standard benchmark datasets.

- :func:`next_click` / :class:`Click`: the click simulator.
- :mod:`clicksam.eval.metrics`: IoU, boundary IoU, NoC, NoF, mIoU@k.
- :mod:`clicksam.eval.datasets`: loaders (GrabCut, Berkeley, DAVIS, COCO-MVal, SBD, PascalVOC,
  HQSeg-44K, folders).
- :mod:`clicksam.eval.segmenter`: the segmenter interface and oracles;
  :mod:`clicksam.eval.sam_segmenter`: SAM and its methods behind it.
- :mod:`clicksam.eval.runner` / :mod:`clicksam.eval.report`: resumable runs, tables and plots.
"""
from __future__ import annotations

from typing import Any

from .clicker import Click, NoErrorLeftError, find_next_click, next_click
from .metrics import boundary_iou, iou, miou_curve, noc, nof, summarize_click_ious

__all__ = [
    "Click", "NoErrorLeftError", "next_click", "find_next_click", "iou", "boundary_iou", "noc", "nof",
    "miou_curve", "summarize_click_ious", "Segmenter", "Prompt", "SegmenterOutput", "SamSegmenter",
    "evaluate_clicks", "evaluate_prompts", "load_dataset", "run_dataset", "RunSettings", "write_run_report",
]

_LAZY = {
    "Segmenter": "segmenter", "Prompt": "segmenter", "SegmenterOutput": "segmenter",
    "SamSegmenter": "sam_segmenter", "evaluate_clicks": "loop", "evaluate_prompts": "prompts",
    "load_dataset": "datasets", "run_dataset": "runner", "RunSettings": "runner",
    "write_run_report": "report",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
