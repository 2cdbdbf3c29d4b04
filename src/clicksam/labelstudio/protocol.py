"""The shapes Label Studio's ML-backend protocol exchanges, and the labelling config they refer to.

Label Studio (``label_studio/ml/api_connector.py``) sends:

- ``POST /setup``   ``{"project": "<id>.<created-timestamp>", "schema": <label config XML>,
  "hostname": <Label Studio URL>, "access_token": <project owner's legacy token>, "extra_params": ...}``,
  answered with ``{"model_version": str}``;
- ``POST /predict`` ``{"tasks": [task, ...], "project": ..., "label_config": <XML>,
  "params": {"login": ..., "password": ..., "context": {"result": [region, ...]} | null}}``,
  answered with ``{"results": [prediction, ...]}``. In interactive mode (a *smart* tool in the
  labelling page) ``tasks`` holds one task and ``context.result`` the prompt regions: every
  dynamic region of the same type, label and image as the one just drawn.

A prompt region (Label Studio's own serialisation) looks like::

    {"id": "kp1", "from_name": "click", "to_name": "image", "type": "keypointlabels",
     "original_width": 640, "original_height": 480, "image_rotation": 0,
     "value": {"x": 41.2, "y": 30.5, "width": 0.5, "keypointlabels": ["Object"]},
     "is_positive": true}

``x``, ``y``, ``width`` and ``height`` are percentages (0-100) of the image's width and height;
``is_positive`` is false for a keypoint placed with the Alt modifier. A prediction is
``{"result": [brush region], "score": float, "model_version": str}`` with a brush region
``{"from_name", "to_name", "type": "brushlabels", "original_width", "original_height",
"value": {"format": "rle", "rle": [bytes], "brushlabels": [label]}, "score"}``.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

__all__ = [
    "ControlTag",
    "LabelConfig",
    "Prompt",
    "PromptGroup",
    "ProtocolError",
    "brush_region",
    "group_prompts",
    "parse_context",
    "project_id",
]

KEYPOINT, RECTANGLE, BRUSH = "keypointlabels", "rectanglelabels", "brushlabels"
PROMPT_TYPES = (KEYPOINT, RECTANGLE)


class ProtocolError(ValueError):
    """A request that does not fit the protocol or the labelling config (answered with 422)."""


@dataclass(frozen=True)
class ControlTag:
    """A labelling control: ``kind`` is ``keypointlabels``, ``rectanglelabels`` or ``brushlabels``."""

    name: str
    kind: str
    to_name: str
    labels: tuple[str, ...]
    smart: bool = False


@dataclass(frozen=True)
class LabelConfig:
    """What clicksam needs from a labelling config.

    images: Image tag name -> the task-data key of its ``value="$key"``.
    brushes: Image tag name -> the BrushLabels control that receives the masks.
    prompts: control name -> a KeyPointLabels or RectangleLabels control on one of those images.
    """

    images: dict[str, str]
    brushes: dict[str, ControlTag]
    prompts: dict[str, ControlTag]

    @classmethod
    def parse(cls, xml: str) -> "LabelConfig":
        """Read a labelling config; raises :class:`ProtocolError` saying what it lacks."""
        from xml.etree import ElementTree

        if not isinstance(xml, str) or not xml.strip():
            raise ProtocolError("the request carries no labelling config (label_config / schema)")
        try:
            root = ElementTree.fromstring(xml)
        except ElementTree.ParseError as exc:
            raise ProtocolError(f"the labelling config is not valid XML: {exc}") from None
        images: dict[str, str] = {}
        controls: list[ControlTag] = []
        for element in root.iter():
            tag = element.tag.lower()
            if tag == "image" and element.get("name") and element.get("value", "").startswith("$"):
                images[element.get("name", "")] = element.get("value", "")[1:]
            elif tag in (KEYPOINT, RECTANGLE, BRUSH) and element.get("name") and element.get("toName"):
                labels = tuple(child.get("value", "") for child in element if child.tag.lower() == "label")
                smart = element.get("smart", "").lower() == "true" or any(
                    child.get("smart", "").lower() == "true" for child in element)
                controls.append(ControlTag(element.get("name", ""), tag, element.get("toName", ""), labels, smart))
        brushes: dict[str, ControlTag] = {}
        for control in controls:
            if control.kind == BRUSH and control.to_name in images:
                brushes.setdefault(control.to_name, control)
        prompts = {c.name: c for c in controls if c.kind in PROMPT_TYPES and c.to_name in brushes}
        if not images:
            raise ProtocolError('the labelling config has no <Image name="..." value="$..."/> tag')
        if not brushes:
            raise ProtocolError("the labelling config has no <BrushLabels> control on an <Image>; clicksam "
                                "answers with brush masks (see `clicksam label-studio --print-config`)")
        if not prompts:
            raise ProtocolError("the labelling config has no <KeyPointLabels> or <RectangleLabels> control on "
                                "the image of its <BrushLabels>; add one with smart=\"true\"")
        return cls(images, brushes, prompts)


@dataclass(frozen=True)
class Prompt:
    """One prompt region in image pixels.

    kind ``"point"``: ``coords`` (x, y), a pixel index (pixel centres at integers);
    kind ``"box"``: ``coords`` (x0, y0, x1, y1), the box's edges (XYXY, continuous).
    """

    region_id: str
    kind: str
    coords: tuple[float, ...]
    positive: bool = True


@dataclass
class PromptGroup:
    """The prompts of one request for one image: ``label`` is the object's label, ``None`` when
    every region carries a negative label (they then refine the task's last object)."""

    to_name: str
    brush: ControlTag
    label: Optional[str]
    points: list[Prompt] = field(default_factory=list)
    negative_points: list[Prompt] = field(default_factory=list)
    boxes: list[Prompt] = field(default_factory=list)


def _number(region: dict[str, Any], key: str) -> float:
    value = region.get("value", {}).get(key)
    if not isinstance(value, (int, float)) or not np.isfinite(value):
        raise ProtocolError(f"region {region.get('id')!r}: value.{key} must be a number (percent of the image), "
                            f"got {value!r}")
    return float(value)


def _label(region: dict[str, Any]) -> str:
    value = region.get("value", {})
    labels = value.get(region.get("type", "")) or value.get("labels") or []
    if not isinstance(labels, list) or not labels or not isinstance(labels[0], str):
        raise ProtocolError(f"region {region.get('id')!r} has no label (value.{region.get('type')} is empty)")
    return labels[0]


def _prompt(region: dict[str, Any], size: tuple[int, int]) -> Prompt:
    """A prompt in pixels of an image of ``size`` (H, W) from a region in percent."""
    height, width = size
    rid = str(region.get("id", ""))
    if region["type"] == KEYPOINT:
        # Label Studio's x is continuous (0 = left edge, W = right edge); clicksam's clicks are pixel
        # indices whose centre is the integer, so the pixel under the point is floor(u) = round(u - 0.5).
        x = min(max(_number(region, "x") / 100 * width - 0.5, 0.0), width - 1.0)
        y = min(max(_number(region, "y") / 100 * height - 0.5, 0.0), height - 1.0)
        return Prompt(rid, "point", (x, y), region.get("is_positive", True) is not False)
    x0, y0 = _number(region, "x") / 100 * width, _number(region, "y") / 100 * height
    x1, y1 = x0 + _number(region, "width") / 100 * width, y0 + _number(region, "height") / 100 * height
    if abs(float(region.get("value", {}).get("rotation", 0) or 0)) > 1e-6:
        raise ProtocolError(f"rectangle {rid!r} is rotated; draw an unrotated rectangle as a box prompt")
    clip = lambda v, hi: min(max(v, 0.0), float(hi))  # noqa: E731
    return Prompt(rid, "box", (clip(x0, width), clip(y0, height), clip(x1, width), clip(y1, height)))


def parse_context(results: Any, config: LabelConfig) -> list[dict[str, Any]]:
    """The context's prompt regions that belong to ``config``'s prompt controls (others are ignored).

    Raises :class:`ProtocolError` for a malformed region, or for regions on several images.
    """
    if not isinstance(results, list):
        raise ProtocolError("context.result must be a list of regions")
    regions = []
    for region in results:
        if not isinstance(region, dict) or not isinstance(region.get("value"), dict):
            raise ProtocolError(f"context.result holds a region that is not an object with a value: {region!r:.200}")
        kind = str(region.get("type", "")).lower()
        control = config.prompts.get(str(region.get("from_name", "")))
        if kind in PROMPT_TYPES and control is not None and control.kind == kind:
            regions.append({**region, "type": kind, "to_name": control.to_name})
    if len({r["to_name"] for r in regions}) > 1:
        raise ProtocolError("context.result holds prompts on several images; send one image's prompts at a time")
    return regions


def group_prompts(regions: list[dict[str, Any]], config: LabelConfig, negative_labels: frozenset[str],
                  size: tuple[int, int]) -> PromptGroup:
    """Sort the regions of one image into positive/negative points and boxes, in pixels of ``size`` (H, W)."""
    to_name = regions[0]["to_name"]
    group = PromptGroup(to_name, config.brushes[to_name], None)
    height, width = size
    for region in regions:
        shown = (region.get("original_width"), region.get("original_height"))
        if None not in shown and tuple(shown) != (width, height):
            raise ProtocolError(f"Label Studio shows the image as {shown[0]}x{shown[1]} but the backend read it as "
                                f"{width}x{height} (WxH); is the task pointing at another file, or is the image "
                                "rotated by its EXIF orientation?")
        label = _label(region)
        prompt = _prompt(region, size)
        if prompt.kind == "box":
            group.boxes.append(prompt)
            group.label = label
        elif label.lower() in negative_labels:
            group.negative_points.append(Prompt(prompt.region_id, "point", prompt.coords, positive=False))
        else:
            group.points.append(prompt)
            group.label = label
    return group


def brush_region(mask: np.ndarray, score: float, brush: ControlTag, to_name: str, label: str) -> dict[str, Any]:
    """A ``brushlabels`` result for an H×W bool mask (Label Studio's brush RLE, at the image's size)."""
    from clicksam.labelstudio.rle import mask_to_rle

    height, width = mask.shape
    return {
        "id": uuid.uuid4().hex[:10],
        "from_name": brush.name,
        "to_name": to_name,
        "type": BRUSH,
        "original_width": int(width),
        "original_height": int(height),
        "image_rotation": 0,
        "value": {"format": "rle", "rle": mask_to_rle(mask), "brushlabels": [label]},
        "score": float(score),
        "readonly": False,
    }


def project_id(project: Any) -> str:
    """``"12.1700000000"`` -> ``"12"`` (Label Studio's project uid is ``<id>.<created timestamp>``)."""
    return str(project or "").split(".", 1)[0]
