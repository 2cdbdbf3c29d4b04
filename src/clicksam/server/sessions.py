"""Live model sessions of the annotator: one per object, for the most recently used images.

Invariant: a live session holds exactly the prompts (clicks, boxes) of its object's current
steps, in order. A session missing (after a restart, an eviction, a reset, an undone reset, a redo
or a method switch) is rebuilt from the steps' stored results (:mod:`clicksam.server.states`)
without a decode; only steps without a usable stored result are recomputed, each from the one
before it, and stored.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Optional

from clicksam.server.backend import ObjectSession, SessionFactory
from clicksam.server.errors import BadInput, Conflict
from clicksam.server.states import StepStates
from clicksam.server.steps import Action
from clicksam.server.store import ObjectRecord
from clicksam.server.worker import EncodingWorker

__all__ = ["SessionPool", "LiveSession", "apply_prompt"]

log = logging.getLogger(__name__)


def apply_prompt(session: ObjectSession, action: Action) -> Any:
    """Run one prompt through a session; returns what the session returns (InteractiveSession: the
    new mask). ``ValueError`` for a prompt the session refuses."""
    if action.kind == "click":
        return session.add_click(action.x, action.y, positive=action.positive)
    return session.add_box(*action.box)


@dataclass
class LiveSession:
    """A session and the history key of the prepared image it runs on (what its steps are stored under)."""

    session: ObjectSession
    key: str


class SessionPool:
    """Sessions per image and object, the images kept in an LRU of ``live_images``.

    Args:
        factory: opens sessions on prepared images.
        worker: hands out prepared (encoded) images.
        states: the stored step results.
        encode_timeout: seconds to wait for an image's encoding before a 503.
        live_images: images whose sessions stay in memory.
        decode_slots: prompts computed at the same time (``compute`` is the semaphore).
    """

    def __init__(self, factory: SessionFactory, worker: EncodingWorker, states: StepStates, encode_timeout: float,
                 live_images: int, decode_slots: int) -> None:
        if decode_slots < 1:
            raise ValueError(f"decode_slots must be >= 1, got {decode_slots}")
        self.factory, self.worker, self.states = factory, worker, states
        self.encode_timeout, self.live_images = encode_timeout, live_images
        self.compute = threading.BoundedSemaphore(decode_slots)
        self._guard = threading.Lock()
        self._sessions: OrderedDict[str, dict[int, LiveSession]] = OrderedDict()

    def live(self, name: str, object_id: int) -> Optional[ObjectSession]:
        """The object's session if it is in memory."""
        with self._guard:
            live = self._sessions.get(name, {}).get(object_id)
            return None if live is None else live.session

    def drop(self, name: str, object_id: int) -> None:
        """Forget the object's session (it is rebuilt from the stored steps when needed)."""
        with self._guard:
            self._sessions.get(name, {}).pop(object_id, None)

    def drop_image(self, name: str) -> None:
        """Forget every session of an image (its file changed)."""
        with self._guard:
            self._sessions.pop(name, None)

    def put(self, name: str, object_id: int, live: LiveSession) -> None:
        """Keep ``live`` as the object's live session (evicting the least recent image)."""
        with self._guard:
            self._sessions.setdefault(name, {})[object_id] = live
            self._sessions.move_to_end(name)
            while len(self._sessions) > self.live_images:
                self._sessions.popitem(last=False)

    def get(self, name: str, record: ObjectRecord) -> ObjectSession:
        """The object's live session, rebuilt from its current steps when needed."""
        with self._guard:
            live = self._sessions.get(name, {}).get(record.id)
            if live is not None:
                self._sessions.move_to_end(name)
                return live.session
        live = self.build(name, record, record.method)
        self.put(name, record.id, live)
        return live.session

    def build(self, name: str, record: ObjectRecord, method: str) -> LiveSession:
        """A new session running ``method`` on the record's current steps, from their stored results
        (not kept). Steps recomputed meanwhile get their stored result in ``record`` (save it)."""
        prepared = self.worker.get(name, self.encode_timeout)
        try:
            session = self.factory.create(prepared, method)
        except ValueError as exc:
            raise Conflict(str(exc)) from exc
        key = self.factory.history_key(prepared)
        actions = [step for step in record.current if isinstance(step, Action)]
        stored = self.states.load(name, [a.state for a in actions], key)
        with self.compute:
            try:
                recomputed = session.restore([(a.prompt, t) for a, t in zip(actions, stored)])
            except ValueError as exc:  # a stored prompt the image does not take: the file was edited
                raise BadInput(f"object {record.id} of {name!r}: {exc}") from exc
        if recomputed:
            live = LiveSession(session, key)
            for index, (action, tensors) in enumerate(zip(actions, stored)):
                if tensors is None:
                    self._note(record, action, self.store_step(name, live, index))
        return LiveSession(session, key)

    def store_step(self, name: str, live: LiveSession, index: Optional[int] = None) -> Optional[dict[str, Any]]:
        """Store a step of ``live`` (default its current one); the reference for ``Action.state``,
        None when it could not be written (the step is then recomputed when needed)."""
        try:
            return self.states.put(name, live.key, live.session.step_tensors(index))
        except OSError as exc:
            log.warning("cannot store the result of a step of %s (%s); it will be recomputed when needed", name, exc)
            return None

    def store_current(self, name: str, object_id: int) -> Optional[dict[str, Any]]:
        """Store the current step of the object's live session (after a prompt)."""
        with self._guard:
            live = self._sessions.get(name, {}).get(object_id)
        return None if live is None else self.store_step(name, live)

    @staticmethod
    def _note(record: ObjectRecord, action: Action, ref: Optional[dict[str, Any]]) -> None:
        """Put the stored result ``ref`` on ``action`` in the record's history."""
        for i, step in enumerate(record.actions):
            if step is action:
                record.actions[i] = dataclasses.replace(action, state=ref)
                return
