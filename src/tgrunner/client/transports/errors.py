"""The errors every transport raises when an HTTP exchange got no complete response.

::

    TransportError       no complete response: connecting failed, or the connection broke
    └── TransportTimeout connecting, waiting for a free connection, or the answer took too long

Each says how far the exchange got, which is what the Bot's retry policy
(:mod:`tgrunner.client.retry`) decides on: ``sent`` (the request may have reached the server)
and ``answered`` (some of a response had arrived).
"""

from __future__ import annotations

__all__ = ["TransportError", "TransportTimeout"]


class TransportError(Exception):
    """The request got no complete HTTP response: connecting failed, or the connection broke.

    - ``sent``: the request may have reached the server (default True). False only when it
      provably did not: connecting failed, or no connection was free in time.
    - ``answered``: some of a response had arrived when it broke (default False).

    The message says what happened and to which server; ``__cause__`` is the ``OSError``
    behind it when there was one. A transport never resends a request on its own.
    """

    def __init__(self, message: str, *, sent: bool = True, answered: bool = False) -> None:
        super().__init__(message)
        self.sent = sent
        self.answered = answered


class TransportTimeout(TransportError):
    """Connecting, waiting for a pooled connection, or waiting for the response took too long."""
