"""SAM-REF (Yu et al., CVPR 2025): GlobalDiff and PatchDiff refiners after SAM's decoder.

SPEC §5. ``attach(model)`` adds a :class:`SamRef` at ``model.sam_ref``; :class:`SamRefStage`
runs it in the interaction pipeline; ``save_sam_ref_file`` / ``load_sam_ref_file`` write and
read method files that carry the refiner's :class:`SamRefConfig`; ``SPEC`` is the method's
registry entry. The names load on first use, so that listing the registered methods imports no
model code.
"""
from __future__ import annotations

from clicksam.methods.registry import UNTRAINED_IDENTITY, MethodSpec, OnnxExport, lazy_exports

# The model families SAM-REF applies to: the refiners read the model input, the 256×64×64 embedding
# and the decoder's low-res logits in the model frame, which every family has (SAM 2's frame is the
# whole image resized to a square).
FAMILIES = ("sam", "sam2", "hq-sam")

_MODEL = "clicksam.methods.sam_ref.model"
_MAP = "clicksam.methods.sam_ref.prompt_maps"
_REFINER = "clicksam.methods.sam_ref.refiner"
_WINDOW = "clicksam.methods.sam_ref.window"
_LAZY = {
    "SamRefConfig": "clicksam.methods.sam_ref.config",
    "SamRef": _MODEL,
    "SamRefOutput": _MODEL,
    "attach": _MODEL,
    "attach_from_metadata": _MODEL,
    "config_from_metadata": _MODEL,
    "file_metadata": _MODEL,
    "load_sam_ref_file": _MODEL,
    "save_sam_ref_file": _MODEL,
    "click_disks": _MAP,
    "prompt_map": _MAP,
    "upsample_logits": _MAP,
    "DetailRefiner": _REFINER,
    "RefinerContext": _REFINER,
    "RefinerOutput": _REFINER,
    "SamRefStage": "clicksam.methods.sam_ref.stage",
    "SamRefTraining": "clicksam.methods.sam_ref.training",
    "crop_resize": _WINDOW,
    "detail_window": _WINDOW,
    "largest_changed_region": _WINDOW,
    "paste": _WINDOW,
    "use_previous_base": _WINDOW,
}

SPEC = MethodSpec(
    name="sam-ref",
    stage="clicksam.methods.sam_ref.stage:SamRefStage",
    attribute="sam_ref",
    order=30,
    attach=f"{_MODEL}:attach",
    attach_from_metadata=f"{_MODEL}:attach_from_metadata",
    file_metadata=f"{_MODEL}:file_metadata",
    training="clicksam.methods.sam_ref.training:SamRefTraining",
    families=FAMILIES,
    # on runtime="onnx" the GFR and the LFR run as graphs of their own (see sam_ref/onnx.py)
    onnx=OnnxExport(export="clicksam.methods.sam_ref.onnx:export", in_runtime=True,
                    runtime_module="clicksam.methods.sam_ref.onnx:runtime_module"),
    untrained=UNTRAINED_IDENTITY,
    weights_hint="load a sam-ref method file (written by `clicksam train --method sam-ref`)",
    description="SAM-REF: full-resolution global and patch refiners after the decoder (CVPR 2025)",
)

__all__ = ["SPEC", *_LAZY]

__getattr__ = lazy_exports(__name__, _LAZY)
