"""Labelling configs, prompt regions in Label Studio's percent frame, brush results."""
from __future__ import annotations

import numpy as np
import pytest

from clicksam.labelstudio.cli import config_text
from clicksam.labelstudio.protocol import (
    LabelConfig,
    ProtocolError,
    brush_region,
    group_prompts,
    parse_context,
    project_id,
)
from clicksam.labelstudio.rle import rle_to_mask
from tests.labelstudio.conftest import keypoint, rectangle

NEGATIVE = frozenset({"negative"})


def test_shipped_config():
    config = LabelConfig.parse(config_text())
    assert config.images == {"image": "image"}
    assert config.brushes["image"].name == "mask" and config.brushes["image"].labels == ("Object", "Other")
    assert {n: (c.kind, c.smart) for n, c in config.prompts.items()} == {
        "click": ("keypointlabels", True), "box": ("rectanglelabels", True)}
    assert config.prompts["click"].labels == ("Object", "Other", "Negative")


@pytest.mark.parametrize("xml, message", [
    ("", "no labelling config"),
    ("<View><Image name='i' value='$im'/>", "not valid XML"),
    ("<View><KeyPointLabels name='k' toName='i'/></View>", "no <Image"),
    ("<View><Image name='i' value='$im'/><KeyPointLabels name='k' toName='i'/></View>", "no <BrushLabels>"),
    ("<View><Image name='i' value='$im'/><BrushLabels name='b' toName='i'/></View>", "no <KeyPointLabels>"),
    ("<View><Image name='i' value='$im'/><Image name='j' value='$j'/><BrushLabels name='b' toName='i'/>"
     "<RectangleLabels name='r' toName='j'/></View>", "no <KeyPointLabels>"),
])
def test_config_errors(xml, message):
    with pytest.raises(ProtocolError, match=message):
        LabelConfig.parse(xml)


def test_keypoint_is_the_pixel_under_it_and_box_keeps_edges():
    config = LabelConfig.parse(config_text())
    regions = parse_context([keypoint("a", 10, 20), keypoint("b", 599, 0, positive=False),
                             rectangle("r", (5, 6, 300.5, 200))], config)
    group = group_prompts(regions, config, NEGATIVE, (400, 600))
    assert group.label == "Object" and group.brush.name == "mask" and group.to_name == "image"
    assert [(p.region_id, p.positive) for p in group.points] == [("a", True), ("b", False)]
    assert group.points[0].coords == pytest.approx((10, 20)) and group.points[1].coords == pytest.approx((599, 0))
    assert group.boxes[0].coords == pytest.approx((5, 6, 300.5, 200))


def test_missing_is_positive_is_positive_and_negative_labels():
    config = LabelConfig.parse(config_text())
    regions = parse_context([keypoint("a", 1, 1, positive=None), keypoint("n", 3, 3, label="negative")], config)
    group = group_prompts(regions, config, NEGATIVE, (400, 600))
    assert group.points[0].positive and group.label == "Object"
    assert [(p.region_id, p.positive) for p in group.negative_points] == [("n", False)]
    only_negative = group_prompts(parse_context([keypoint("n", 3, 3, label="Negative")], config), config, NEGATIVE,
                                  (400, 600))
    assert only_negative.label is None and not only_negative.points


def test_points_at_the_border_stay_inside():
    config = LabelConfig.parse(config_text())
    region = keypoint("a", 0, 0)
    region["value"].update(x=0.0, y=100.0)
    group = group_prompts(parse_context([region], config), config, NEGATIVE, (400, 600))
    assert group.points[0].coords == (0.0, 399.0)


def test_other_controls_and_types_are_ignored():
    config = LabelConfig.parse(config_text())
    brush = {"id": "z", "from_name": "mask", "to_name": "image", "type": "brushlabels", "value": {"rle": []}}
    foreign = keypoint("f", 1, 1, control="elsewhere")
    assert parse_context([brush, foreign], config) == []


@pytest.mark.parametrize("change, message", [
    (lambda r: r["value"].update(x="12"), "value.x must be a number"),
    (lambda r: r["value"].update(keypointlabels=[]), "has no label"),
    (lambda r: r.update(original_width=400, original_height=600), "shows the image as 400x600"),
])
def test_bad_regions(change, message):
    config = LabelConfig.parse(config_text())
    region = keypoint("a", 1, 1)
    change(region)
    with pytest.raises(ProtocolError, match=message):
        group_prompts(parse_context([region], config), config, NEGATIVE, (400, 600))


def test_rotated_rectangle_and_malformed_context():
    config = LabelConfig.parse(config_text())
    region = rectangle("r", (1, 1, 20, 20))
    region["value"]["rotation"] = 30
    with pytest.raises(ProtocolError, match="rotated"):
        group_prompts(parse_context([region], config), config, NEGATIVE, (400, 600))
    with pytest.raises(ProtocolError, match="must be a list"):
        parse_context({"x": 1}, config)
    with pytest.raises(ProtocolError, match="not an object with a value"):
        parse_context(["kp"], config)


def test_brush_region_round_trips():
    config = LabelConfig.parse(config_text())
    mask = np.zeros((30, 40), bool)
    mask[5:20, 10:35] = True
    region = brush_region(mask, 0.87, config.brushes["image"], "image", "Other")
    assert region["type"] == "brushlabels" and region["from_name"] == "mask" and region["to_name"] == "image"
    assert (region["original_width"], region["original_height"]) == (40, 30) and region["score"] == 0.87
    assert region["value"]["format"] == "rle" and region["value"]["brushlabels"] == ["Other"]
    assert np.array_equal(rle_to_mask(region["value"]["rle"], 40, 30), mask)


def test_project_id():
    assert project_id("12.1700000000") == "12" and project_id(None) == "" and project_id(7) == "7"
