"""Testing without Telegram: :class:`FakeTelegram`, a real Bot API server on loopback.

.. code-block:: python

    from tgrunner.testing import FakeTelegram

    async def test_echo():
        async with FakeTelegram() as tg:
            alice = tg.user("Alice")
            ...  # run the bot against tg.api_url with tg.token
            alice.send("hi")
            [reply] = await tg.wait_for_replies(alice, 1)
            assert reply["text"] == "hi"

Sync code runs it in a thread: ``with FakeTelegram().in_thread() as tg: ...``.

:func:`running` runs a bot in-process against it for a block (``async with``, or ``with`` in
sync tests); the pytest plugin (:mod:`.pytest_plugin`) offers the ``fake_telegram`` fixture.
"""

from __future__ import annotations

from tgrunner.testing.fake.base import ApiError, Upload
from tgrunner.testing.fake.faults import Faults, FloodLimits
from tgrunner.testing.fake.server import FakeTelegram, RecordedRequest
from tgrunner.testing.fake.webhook import WebhookRetry, WebhookTimings
from tgrunner.testing.inprocess import Running, running

__all__ = [
    "ApiError",
    "FakeTelegram",
    "Faults",
    "FloodLimits",
    "RecordedRequest",
    "Running",
    "Upload",
    "WebhookRetry",
    "WebhookTimings",
    "running",
]
