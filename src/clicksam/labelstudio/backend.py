"""The Label Studio backend's logic, apart from HTTP: setup, predict, webhook.

Every method takes and returns the JSON bodies of the protocol (see :mod:`.protocol`); bad
requests raise :class:`~clicksam.labelstudio.protocol.ProtocolError` or
:class:`~clicksam.labelstudio.images.ImageError`, which the app answers with 422.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Iterable, Optional

from clicksam.labelstudio.images import ImageResolver
from clicksam.labelstudio.protocol import (
    LabelConfig,
    ProtocolError,
    brush_region,
    group_prompts,
    parse_context,
    project_id,
)
from clicksam.labelstudio.sessions import TaskSessions

__all__ = ["LabelStudioBackend", "SUBMIT_EVENTS"]

log = logging.getLogger("clicksam.labelstudio")

# webhook actions after which a task's prompts are gone (its annotation was saved or deleted)
SUBMIT_EVENTS = frozenset({"ANNOTATION_CREATED", "ANNOTATIONS_CREATED", "ANNOTATION_UPDATED", "TASKS_DELETED"})


class LabelStudioBackend:
    """Answers Label Studio's requests with clicksam's sessions.

    Args:
        sessions: the task sessions (model, method, embedding cache).
        images: resolves the tasks' image references.
        model_version: the version string shown in Label Studio.
        negative_labels: keypoint label values (case-insensitive) that mark background clicks.
    """

    def __init__(self, sessions: TaskSessions, images: ImageResolver, model_version: str,
                 negative_labels: Iterable[str] = ()) -> None:
        self.sessions, self.images, self.model_version = sessions, images, model_version
        self.negative_labels = frozenset(label.strip().lower() for label in negative_labels)
        self._configs: dict[str, LabelConfig] = {}
        self._lock = threading.Lock()

    def config(self, xml: Any) -> LabelConfig:
        """The parsed labelling config (remembered by its text)."""
        with self._lock:
            cached = self._configs.get(xml) if isinstance(xml, str) else None
        if cached is not None:
            return cached
        parsed = LabelConfig.parse(xml)
        with self._lock:
            if len(self._configs) > 32:
                self._configs.clear()
            self._configs[xml] = parsed
        return parsed

    def health(self) -> dict[str, Any]:
        return {"status": "UP", "model_class": "clicksam", "model_version": self.model_version}

    def setup(self, body: dict[str, Any]) -> dict[str, Any]:
        """``/setup``: check the project's labelling config; remember Label Studio's address."""
        self.config(body.get("schema"))
        self.images.connect(project_id(body.get("project")), body.get("hostname"), body.get("access_token"))
        return {"model_version": self.model_version}

    def webhook(self, body: dict[str, Any]) -> dict[str, Any]:
        """``/webhook``: forget a task's session once its annotation is saved (no training here)."""
        action = str(body.get("action", ""))
        dropped = 0
        if action in SUBMIT_EVENTS:
            tasks = [t for key in ("task", "tasks") for t in _as_list(body.get(key))]
            for task in tasks:
                if isinstance(task, dict) and "id" in task:
                    dropped += self.sessions.forget(task["id"])
            log.info("%s: closed %d task session(s)", action, dropped)
        return {"status": "ok", "action": action, "sessions_closed": dropped}

    def predict(self, body: dict[str, Any]) -> dict[str, Any]:
        """``/predict``: a brush mask for the prompt regions of ``params.context`` (interactive mode).

        Without prompts (batch pre-annotation) there is nothing to segment: no predictions.
        """
        tasks = body.get("tasks")
        if not isinstance(tasks, list) or not all(isinstance(t, dict) for t in tasks):
            raise ProtocolError("the request needs 'tasks': a list of task objects")
        params = body.get("params") if isinstance(body.get("params"), dict) else {}
        context = params.get("context") or body.get("context")
        if not isinstance(context, dict) or not context.get("result"):
            return {"results": []}
        if len(tasks) != 1:
            raise ProtocolError(f"an interactive request carries one task, got {len(tasks)}")
        config = self.config(body.get("label_config"))
        regions = parse_context(context["result"], config)
        if not regions:
            return {"results": []}
        task = tasks[0]
        return {"results": [self._predict_task(task, regions, config, project_id(body.get("project")))]}

    def _predict_task(self, task: dict[str, Any], regions: list[dict[str, Any]], config: LabelConfig,
                      project: str) -> dict[str, Any]:
        to_name = regions[0]["to_name"]
        data = task.get("data") if isinstance(task.get("data"), dict) else {}
        reference = data.get(config.images[to_name])
        if reference is None:
            raise ProtocolError(f"task {task.get('id')} has no data.{config.images[to_name]} (the value of "
                                f"<Image name={to_name!r}>)")
        start = time.perf_counter()
        session = self.sessions.get((task.get("id"), to_name, str(reference)),
                                    lambda: self.images.read(str(reference), project))
        with session.lock:
            group = group_prompts(regions, config, self.negative_labels, session.size)
            label = group.label or (session.active.label if session.active else None)
            _check_label(label, group.brush.labels, group.brush.name)
            obj, mask, score = session.update(group)
        result = [brush_region(mask, score, group.brush, to_name, obj.label)] if mask.any() else []
        log.info("task %s: %s object %d, %d prompt(s), %.3f s", task.get("id"), obj.label, obj.index,
                 len(obj.applied), time.perf_counter() - start)
        return {"result": result, "score": score, "model_version": self.model_version}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _check_label(label: Optional[str], brush_labels: tuple[str, ...], brush_name: str) -> None:
    if label is not None and brush_labels and label not in brush_labels:
        raise ProtocolError(f"the prompt's label {label!r} is not a label of the BrushLabels control "
                            f"{brush_name!r} ({', '.join(brush_labels)}); give the keypoint, rectangle and brush "
                            "controls the same <Label value=...> names")
