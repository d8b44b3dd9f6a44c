"""Methods carried in a direct-mode webhook's answer: what a handler returned, by update id.

Telegram lets a webhook answer its POST with one method call as the body
(``{"method": "sendMessage", "chat_id": …}``), which it then executes: no request of the bot's
own, and no result the bot can see (fire-and-forget). With ``--webhook-mode direct`` the
answer waits for the handler, so a handler's returned method can ride in it. aiogram's
handlers return one by its own convention (``return message.answer("hi")``); its front-end
offers it here. The webhook source takes it when it answers; with worker processes the worker
takes it at the handler's end and sends it to the supervisor in its DONE frame, which puts it
here again.

One runtime per process: :data:`ANSWERS` is process-wide, and off (``enabled`` False) unless
the runtime runs a direct-mode webhook.
"""

from __future__ import annotations

import orjson

__all__ = ["ANSWERS", "Answers"]


class Answers:
    """The answers waiting for their update's end, by update id; off by default."""

    def __init__(self) -> None:
        self.enabled = False
        self._bodies: dict[int, bytes] = {}

    def offer(self, update_id: int, method: str, params: dict[str, object]) -> bool:
        """Keep ``method(**params)`` as the answer of ``update_id``; False (nothing kept: send
        it to the Bot API instead) when off, for a ``get*`` method (Telegram ignores those
        there), or when the update already has one."""
        if not self.enabled or method[:3].lower() == "get" or update_id in self._bodies:
            return False
        self._bodies[update_id] = orjson.dumps({"method": method, **params})
        return True

    def put(self, update_id: int, body: bytes) -> None:
        """Keep an answer body as it came from a worker process."""
        self._bodies[update_id] = body

    def take(self, update_id: int) -> bytes | None:
        """The answer body of ``update_id`` (JSON), once; None when there is none."""
        return self._bodies.pop(update_id, None) if self._bodies else None


ANSWERS = Answers()
"""This process's answers."""
