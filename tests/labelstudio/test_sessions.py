"""A session per task and object: Label Studio's full prompt lists become single clicksam steps."""
from __future__ import annotations

import numpy as np
import pytest

import clicksam
from clicksam.labelstudio.cli import config_text
from clicksam.labelstudio.protocol import LabelConfig, ProtocolError, group_prompts, parse_context
from clicksam.labelstudio.sessions import TaskSession, TaskSessions
from tests.labelstudio.conftest import keypoint, rectangle

CONFIG = LabelConfig.parse(config_text())


def group(*regions):
    return group_prompts(parse_context(list(regions), CONFIG), CONFIG, frozenset({"negative"}), (400, 600))


def reference_mask(predictor, steps):
    """The mask InteractiveSession gives for the same prompts applied one by one."""
    session = clicksam.InteractiveSession(predictor, method="sam")
    for step in steps:
        if len(step) == 4:
            session.add_box(*step)
        else:
            session.add_click(*step)
    return session.mask


@pytest.fixture
def task(tiny_predictor):
    return TaskSession(tiny_predictor, "sam")


def test_each_new_keypoint_is_one_step(task, tiny_predictor):
    a, b = keypoint("a", 300, 200), keypoint("b", 100, 80, positive=False)
    obj, _, _ = task.update(group(a))
    obj2, mask, score = task.update(group(a, b))
    assert obj2 is obj and len(task.session.objects[obj.index].history) == 2
    assert np.array_equal(mask, reference_mask(tiny_predictor, [(300, 200, True), (100, 80, False)]))
    assert isinstance(score, float)


def test_moved_keypoint_undoes_back_to_it(task, tiny_predictor):
    a, b, c = keypoint("a", 300, 200), keypoint("b", 100, 80), keypoint("c", 500, 300)
    task.update(group(a))
    task.update(group(a, b))
    task.update(group(a, b, c))
    moved = keypoint("b", 120, 90)
    obj, mask, _ = task.update(group(a, moved, c))
    assert [p.region_id for _, p in obj.applied] == ["a", "c", "b"]
    assert np.array_equal(mask, reference_mask(tiny_predictor, [(300, 200, True), (500, 300, True), (120, 90, True)]))


def test_deleted_keypoint_restores_the_earlier_step(task):
    a, b, c = keypoint("a", 300, 200), keypoint("b", 100, 80), keypoint("c", 500, 300)
    task.update(group(a))
    _, after_two, _ = task.update(group(a, b))
    task.update(group(a, b, c))
    obj, mask, _ = task.update(group(a, b))
    assert np.array_equal(mask, after_two) and len(obj.applied) == 2
    assert task.session.can_redo  # the removed step stays redoable until a new prompt


def test_box_then_clicks_refine_one_object(task, tiny_predictor):
    box = rectangle("r", (200, 100, 450, 350))
    obj, _, _ = task.update(group(box))
    obj2, mask, _ = task.update(group(keypoint("a", 300, 200)))
    assert obj2 is obj and len(task.objects) == 1
    assert np.array_equal(mask, reference_mask(tiny_predictor, [(200, 100, 450, 350), (300, 200, True)]))


def test_both_prompts_in_one_request(task, tiny_predictor):
    obj, mask, _ = task.update(group(keypoint("a", 300, 200), rectangle("r", (200, 100, 450, 350))))
    assert [s for s, _ in obj.applied] == ["box", "point"]
    assert np.array_equal(mask, reference_mask(tiny_predictor, [(200, 100, 450, 350), (300, 200, True)]))


def test_new_objects(task):
    first, _, _ = task.update(group(rectangle("r", (200, 100, 450, 350))))
    outside, _, _ = task.update(group(keypoint("a", 20, 20)))  # far outside the box: not a refinement
    assert outside is not first
    again, _, _ = task.update(group(keypoint("b", 30, 30)))  # after accepting: new region ids
    assert again is not outside
    other, _, _ = task.update(group(keypoint("c", 30, 30, label="Other")))
    assert other.label == "Other" and len(task.objects) == 4
    back, _, _ = task.update(group(keypoint("b", 30, 30), keypoint("d", 60, 60)))
    assert back is again and len({o.index for o in task.objects}) == 4


def test_second_box_replaces_the_first(task, tiny_predictor):
    r1, r2 = rectangle("r1", (200, 100, 450, 350)), rectangle("r2", (150, 50, 400, 300))
    task.update(group(r1))
    obj, mask, _ = task.update(group(r1, r2))
    assert [p.region_id for _, p in obj.applied] == ["r2"] and len(task.objects) == 1
    assert np.array_equal(mask, reference_mask(tiny_predictor, [(150, 50, 400, 300)]))


def test_negative_label_refines_the_last_object(task, tiny_predictor):
    with pytest.raises(ProtocolError, match="positive keypoint or a rectangle first"):
        task.update(group(keypoint("n", 10, 10, label="Negative")))
    obj, _, _ = task.update(group(keypoint("a", 300, 200)))
    same, mask, _ = task.update(group(keypoint("n", 100, 100, label="Negative")))
    assert same is obj and [s for s, _ in obj.applied] == ["point", "negative"]
    assert np.array_equal(mask, reference_mask(tiny_predictor, [(300, 200, True), (100, 100, False)]))


def test_sessions_encode_once_and_forget(tiny_model, photo):
    from clicksam.cache import EmbeddingCache

    sessions = TaskSessions(tiny_model, "sam", EmbeddingCache(None), max_tasks=2)
    loads = []

    def load():
        loads.append(1)
        return photo

    first = sessions.get((1, "image", "a.jpg"), load)
    assert sessions.get((1, "image", "a.jpg"), load) is first and len(loads) == 1 and sessions.encodes == 1
    sessions.get((2, "image", "a.jpg"), load)  # same pixels: the embedding comes from the cache
    assert sessions.encodes == 1 and len(loads) == 2
    sessions.get((3, "image", "b.jpg"), load)
    assert len(sessions) == 2 and sessions.forget(3) == 1 and sessions.forget(1) == 0  # 1 was dropped (LRU)
    with pytest.raises(ValueError, match="max_tasks"):
        TaskSessions(tiny_model, "sam", None, max_tasks=0)
