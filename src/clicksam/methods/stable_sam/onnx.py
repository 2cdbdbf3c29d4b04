"""Stable-SAM on ONNX: the plugin lives inside the decoder graph.

On ``SamPredictor(..., runtime="onnx")`` nothing here runs: the stage hands the decoder its plugin
as decoder hooks (:func:`clicksam.methods.stable_sam.plugin.decoder_hooks`), and the onnx runtime
traces them into its click-decoder graph (cached per weights). For ``clicksam export-onnx``,
:func:`export` writes segment-anything's decoder format with the plugin inside, beside the plain one.
"""
from __future__ import annotations

from pathlib import Path

from torch import nn

SUFFIX = ".stable-sam.onnx"


def export(model: nn.Module, decoder_path: Path, opset: int) -> list[Path]:
    """Write ``<decoder stem>.stable-sam.onnx``: the decoder of ``decoder_path`` (same inputs,
    outputs and single-mask choice) with ``model.stable_sam`` in its second two-way block; returns
    ``[path]``."""
    from clicksam.onnx.export import export_decoder

    from .plugin import decoder_hooks

    single = False
    if Path(decoder_path).is_file():
        from clicksam.onnx.export import import_onnx

        props = {p.key: p.value for p in import_onnx().load(str(decoder_path), load_external_data=False).metadata_props}
        single = props.get("clicksam.return_single_mask") == "1"
    target = Path(decoder_path).with_name(Path(decoder_path).stem + SUFFIX)
    return [export_decoder(model, target, return_single_mask=single, opset=opset, hooks=decoder_hooks(model.stable_sam))]
