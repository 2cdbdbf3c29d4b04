"""``clicksam export-onnx``: write the prompt encoder + mask decoder as an ONNX file.

    clicksam export-onnx --model vit_b --checkpoint sam_vit_b_01ec64.pth -o decoder.onnx [--quantize]

The file takes segment-anything's decoder inputs (``image_embeddings``, ``point_coords``,
``point_labels``, ``mask_input``, ``has_mask_input``, ``orig_im_size``) and gives ``masks``,
``iou_predictions`` and ``low_res_masks``; run it with :class:`clicksam.onnx.OnnxDecoder`.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from clicksam.commands.common import add_model_arguments

DEFAULT_OPSET = 17  # kept equal to clicksam.onnx.export.DEFAULT_OPSET (not imported: --help stays light)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser, method=False)
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="PATH", help="ONNX file to write, e.g. decoder.onnx")
    parser.add_argument(
        "--return-single-mask", action="store_true",
        help="one mask per call, chosen as SAM does (best predicted IoU among the multimask outputs for "
             "one click or a box, the single-mask token for more prompts); default: all four masks",
    )
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset version (default {DEFAULT_OPSET}, range 14-20)")
    parser.add_argument("--quantize", action="store_true", help="dynamic uint8 weight quantization with onnxruntime (a smaller file, slightly different logits)")


def run(args: argparse.Namespace) -> int:
    from clicksam.commands.common import load_model
    from clicksam.onnx.export import (attached_methods, check_family, check_opset, export_decoder, export_methods,
                                      import_onnx, import_onnxruntime)
    from clicksam.registry import get_config

    check_opset(args.opset)  # fail on bad arguments before loading a large checkpoint
    check_family(get_config(args.model).family, args.model)
    import_onnx()
    if args.quantize:
        import_onnxruntime()
    model = load_model(args)
    skipped = attached_methods(model)
    if skipped:
        print(f"note: method stages {', '.join(skipped)} are not part of the ONNX graph; it holds SAM's prompt encoder and decoder only")
    path = export_decoder(
        model, args.output, return_single_mask=args.return_single_mask, opset=args.opset, quantize=args.quantize
    )
    size_mb = path.stat().st_size / 1e6
    kind = "single-mask" if args.return_single_mask else "four-mask"
    quantized = ", uint8-quantized" if args.quantize else ""
    print(f"wrote {path} ({size_mb:.1f} MB, {kind}, opset {args.opset}{quantized})")
    for method, files in export_methods(model, path, args.opset).items():
        print(f"{method}: wrote {', '.join(str(f) for f in files) or 'nothing'}")
    return 0
