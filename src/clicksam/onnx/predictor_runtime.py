"""``OnnxRuntime``: a predictor's encode, decode and upscaling on onnxruntime (see :mod:`clicksam.runtime`).

    predictor = SamPredictor(model, runtime="onnx", encoder_precision="int8")

The three graphs (image encoder at the chosen precision, click decoder, upscaling) are exported on
first use and cached on disk under the weights' digests (:mod:`clicksam.onnx.graph_cache`); later
predictors of the same weights load them. The runtime runs SAM's family on the CPU; method stages
run only where their method has an ONNX path (``MethodSpec.onnx`` with ``in_runtime``: decoder hooks
traced into the click-decoder graph), any other is refused by the pipeline with a one-line reason — nothing falls back to torch behind the user's back.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

import numpy as np
import torch

from clicksam.models.hooks import NO_HOOKS, DecoderHooks
from clicksam.models.sam import DecoderOutput
from clicksam.onnx.click_graphs import (DECODER_OUTPUTS, UPSCALE_OUTPUTS, export_click_decoder, export_upscale,
                                        hooks_digest, hooks_problem)
from clicksam.onnx.encoder import OnnxEncoder, _stderr
from clicksam.onnx.export import check_family, import_onnxruntime
from clicksam.onnx.model import LABEL_BOX_BOTTOM_RIGHT, LABEL_BOX_TOP_LEFT, LABEL_PADDING
from clicksam.onnx.sessions import make_session


class OnnxRuntime:
    """SAM on onnxruntime for one model (CPU).

    Args:
        model: a float32 SAM-family model on the CPU.
        encoder_precision: ``"fp32"`` or ``"int8"`` (dynamic int8 MatMul weights, see docs/ONNX.md).
        cache_dir: root of the graph cache (default ``$CLICKSAM_CACHE`` or ``~/.cache/clicksam``).
        num_threads: intra-op threads of every session (default: PyTorch's setting).
        log: called with one line when a graph is exported (default: stderr).
    Raises:
        RuntimeError: onnxruntime is missing (``pip install 'clicksam[onnx]'``).
        ValueError: a family without an ONNX path, or a model not on the CPU.
    """

    name = "onnx"

    def __init__(self, model: Any, encoder_precision: str = "fp32", *, cache_dir: Optional[Any] = None,
                 num_threads: Optional[int] = None, log: Optional[Any] = _stderr) -> None:
        import_onnxruntime()
        check_family(getattr(model, "family", "sam"), getattr(model, "model_name", "?"))
        device = getattr(model, "device", torch.device("cpu"))
        if torch.device(device).type != "cpu":
            raise ValueError(f"runtime='onnx' runs on the CPU; the model is on {device}: build it with device='cpu' "
                             "(--device cpu), or use runtime='torch' on the GPU")
        self.model = model
        self.encoder_precision = encoder_precision
        self.cache_dir, self.num_threads, self.log = cache_dir, num_threads, log
        self.hooked: dict[str, Any] = {}  # hooks digest -> session
        self._encoder: Optional[OnnxEncoder] = None  # exported/loaded on the first encoding
        self.decoder = make_session(export_click_decoder(model, cache_dir=cache_dir, log=log), num_threads)
        self.upscaler = make_session(export_upscale(model.image_size, cache_dir=cache_dir, log=log), num_threads)

    @property
    def postprocessor(self) -> "OnnxRuntime":
        return self

    def signature(self) -> dict[str, str]:
        """Embedding-cache signature entries: onnxruntime's embeddings (int8 above all) are not torch's."""
        return {"encoder_runtime": "onnx", "encoder_precision": self.encoder_precision}

    def stage_problem(self, spec: Any) -> Optional[str]:
        """Why method ``spec``'s stage cannot run here (None when it can)."""
        if getattr(spec, "onnx", None) is None or not spec.onnx.in_runtime:
            return (f"the {spec.name!r} method has no ONNX path yet, so it cannot run with runtime='onnx'; "
                    "use runtime='torch' (--runtime torch) for it")
        return None

    def stage_module(self, spec: Any, module: Any) -> Any:
        """What method ``spec``'s stage is built with here: its ``OnnxExport.runtime_module``'s
        graph-backed stand-in (made once per module and weights), else the module itself (a
        plugin whose decoder hooks are traced into the click graph)."""
        make = getattr(getattr(spec, "onnx", None), "runtime_module", None)
        if make is None or module is None:
            return module
        from clicksam.methods import resolve

        return resolve(make)(module, self)

    # -- encode --------------------------------------------------------------------------------
    @property
    def encoder(self) -> OnnxEncoder:
        """The image encoder at ``encoder_precision`` (exported and loaded on first use: a predictor
        given embeddings only never pays for it)."""
        if self._encoder is None:
            self._encoder = OnnxEncoder.from_model(self.model, self.encoder_precision, self.num_threads,
                                                   cache_dir=self.cache_dir, log=self.log)
        return self._encoder

    def encode_features(self, model_input: torch.Tensor) -> dict[str, torch.Tensor]:
        """B×3×S×S preprocessed images -> ``{"embedding": B×256×64×64}`` (onnxruntime)."""
        return {self.model.embedding_key: self.encoder.encode(model_input)}

    # -- decode --------------------------------------------------------------------------------
    def decoder_feed(self, embedding: torch.Tensor, coords: Optional[torch.Tensor], labels: Optional[torch.Tensor],
                     box: Optional[torch.Tensor], mask_input: Optional[torch.Tensor]) -> dict[str, np.ndarray]:
        """One prompt's graph inputs (SAM's prompt layout: the points, then the box's two corners, or a
        padding point when there is no box).

        Args:
            embedding: 1×256×64×64; coords N×2 and labels N (model frame) or None; box 4 or None;
                mask_input 1×256×256 or None.
        """
        parts, names = [], []
        if coords is not None:
            parts.append(coords.detach().float().cpu().numpy().reshape(-1, 2))
            names.append(labels.detach().float().cpu().numpy().reshape(-1))
        if box is not None:
            parts.append(box.detach().float().cpu().numpy().reshape(2, 2))
            names.append(np.array([LABEL_BOX_TOP_LEFT, LABEL_BOX_BOTTOM_RIGHT], dtype=np.float32))
        elif coords is not None:
            parts.append(np.zeros((1, 2), dtype=np.float32))
            names.append(np.array([LABEL_PADDING], dtype=np.float32))
        if not parts:
            raise ValueError("runtime='onnx' decodes a prompt of at least one point or a box; give a click or a box")
        grid = 4 * self.model.prompt_encoder.image_embedding_size[0]
        has_mask = mask_input is not None
        mask = (mask_input.detach().float().cpu().numpy().reshape(1, 1, grid, grid) if has_mask
                else np.zeros((1, 1, grid, grid), dtype=np.float32))
        return {
            "image_embeddings": np.ascontiguousarray(embedding.detach().float().cpu().numpy()),
            "point_coords": np.ascontiguousarray(np.concatenate(parts)[None], dtype=np.float32),
            "point_labels": np.ascontiguousarray(np.concatenate(names)[None], dtype=np.float32),
            "mask_input": np.ascontiguousarray(mask),
            "has_mask_input": np.array([1.0 if has_mask else 0.0], dtype=np.float32),
        }

    def decode(self, features: Mapping[str, torch.Tensor], points=None, boxes=None, mask_input=None,
               multimask_output: bool = True, hooks: DecoderHooks = NO_HOOKS, **options: Any) -> DecoderOutput:
        """``Sam.decode`` on onnxruntime (shapes as there; B prompts run one after another).

        Decoder hooks (a method stage's plugins) run inside a click-decoder graph traced with them
        (:meth:`hooked_decoder`).

        Raises:
            ValueError: decode options, or hooks that cannot be traced (not ``nn.Module`` s).
        """
        session = self.decoder if not hooks.kv_plugins else self.hooked_decoder(hooks)
        if options:
            raise ValueError(f"runtime='onnx' takes no decode options ({', '.join(options)}); SAM's graph has none")
        embedding = features[self.model.embedding_key]
        prompts = (None if points is None else points[0], boxes, mask_input)
        batch = max((t.shape[0] for t in prompts if t is not None), default=1)
        outs = []
        for b in range(batch):
            feed = self.decoder_feed(
                embedding[b : b + 1] if embedding.shape[0] > 1 else embedding,
                None if points is None else points[0][b], None if points is None else points[1][b],
                None if boxes is None else boxes[b if boxes.shape[0] > 1 else 0],
                None if mask_input is None else mask_input[b if mask_input.shape[0] > 1 else 0])
            outs.append(session.run(list(DECODER_OUTPUTS), feed))
        masks, iou, tokens = (torch.from_numpy(np.concatenate([o[i] for o in outs])) for i in range(3))
        selected = slice(1, None) if multimask_output else slice(0, 1)
        return DecoderOutput(masks[:, selected], iou[:, selected], tokens, masks, iou)

    def hooked_decoder(self, hooks: DecoderHooks) -> Any:
        """The session of the click-decoder graph with ``hooks`` traced in (a method stage's plugins),
        exported on first use and cached on disk under the decoder's and the plugins' weights; the
        plugins' weights are digested on every call, so a changed plugin gets its own graph."""
        problem = hooks_problem(hooks)
        if problem is not None:
            raise ValueError(f"runtime='onnx': {problem}; use runtime='torch'")
        key = hooks_digest(hooks)
        session = self.hooked.get(key)
        if session is None:
            path = export_click_decoder(self.model, hooks, cache_dir=self.cache_dir, log=self.log)
            session = self.hooked[key] = make_session(path, self.num_threads)
        return session

    # -- to the image size -------------------------------------------------------------------------
    def postprocess_masks(self, masks: torch.Tensor, input_size, original_size) -> torch.Tensor:
        """B×C×g×g frame logits -> B×C×H×W logits at the original size (onnxruntime)."""
        feed = {"logits": np.ascontiguousarray(masks.detach().float().cpu().numpy()),
                "input_size": np.array([int(input_size[0]), int(input_size[1])], dtype=np.int64),
                "original_size": np.array([int(original_size[0]), int(original_size[1])], dtype=np.int64)}
        return torch.from_numpy(self.upscaler.run(list(UPSCALE_OUTPUTS), feed)[0])
