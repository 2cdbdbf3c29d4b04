"""Live model sessions of the annotator: one per object, for the most recently used images.

Invariant: a live session holds exactly the prompts (clicks, boxes) of its object's current
steps, in order. A session is rebuilt by replaying those prompts when it is missing (after a
restart, an eviction, a reset, or an undone reset).
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Optional

from clicksam.server.backend import ObjectSession, SessionFactory
from clicksam.server.errors import Conflict
from clicksam.server.steps import Action
from clicksam.server.store import ObjectRecord
from clicksam.server.worker import EncodingWorker

__all__ = ["SessionPool", "apply_prompt"]


def apply_prompt(session: ObjectSession, action: Action) -> None:
    """Run one prompt through a session (``ValueError`` for a prompt the session refuses)."""
    if action.kind == "click":
        session.add_click(action.x, action.y, positive=action.positive)
    else:
        session.add_box(*action.box)


class SessionPool:
    """Sessions per image and object, the images kept in an LRU of ``live_images``.

    Args:
        factory: opens sessions on prepared images.
        worker: hands out prepared (encoded) images.
        encode_timeout: seconds to wait for an image's encoding before a 503.
        live_images: images whose sessions stay in memory.
        decode_slots: prompts computed at the same time (``compute`` is the semaphore).
    """

    def __init__(self, factory: SessionFactory, worker: EncodingWorker, encode_timeout: float,
                 live_images: int, decode_slots: int) -> None:
        if decode_slots < 1:
            raise ValueError(f"decode_slots must be >= 1, got {decode_slots}")
        self.factory, self.worker = factory, worker
        self.encode_timeout, self.live_images = encode_timeout, live_images
        self.compute = threading.BoundedSemaphore(decode_slots)
        self._guard = threading.Lock()
        self._sessions: OrderedDict[str, dict[int, ObjectSession]] = OrderedDict()

    def live(self, name: str, object_id: int) -> Optional[ObjectSession]:
        """The object's session if it is in memory."""
        with self._guard:
            return self._sessions.get(name, {}).get(object_id)

    def drop(self, name: str, object_id: int) -> Optional[ObjectSession]:
        """Forget the object's session (returned, so a failed change can put it back)."""
        with self._guard:
            return self._sessions.get(name, {}).pop(object_id, None)

    def put(self, name: str, object_id: int, session: ObjectSession) -> None:
        """Keep ``session`` as the object's live session (evicting the least recent image)."""
        with self._guard:
            self._sessions.setdefault(name, {})[object_id] = session
            self._sessions.move_to_end(name)
            while len(self._sessions) > self.live_images:
                self._sessions.popitem(last=False)

    def get(self, name: str, record: ObjectRecord) -> ObjectSession:
        """The object's live session, rebuilt from its current prompts when needed."""
        session = self.live(name, record.id)
        if session is not None:
            with self._guard:
                if name in self._sessions:
                    self._sessions.move_to_end(name)
            return session
        session = self.build(name, record, record.method)
        self.put(name, record.id, session)
        return session

    def build(self, name: str, record: ObjectRecord, method: str) -> ObjectSession:
        """A new session running ``method`` with the record's current prompts replayed (not kept)."""
        prepared = self.worker.get(name, self.encode_timeout)
        try:
            session = self.factory.create(prepared, method)
        except ValueError as exc:
            raise Conflict(str(exc)) from exc
        with self.compute:
            for step in record.current:
                if isinstance(step, Action):
                    apply_prompt(session, step)
        return session
