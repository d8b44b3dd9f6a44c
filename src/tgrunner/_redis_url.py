"""The query of a Redis URL split into tgrunner's own options and redis-py's, for the backends
that take one (the RQ job queue's ``--jobs``, the flood store's ``--flood-store``).

Imported only by those backends, so redis-py is imported only when one is chosen.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import parse_qsl

from redis.asyncio.connection import URL_QUERY_ARGUMENT_PARSERS

from tgrunner.errors import ConfigError

__all__ = ["PASSED", "split_query"]

PASSED = frozenset(URL_QUERY_ARGUMENT_PARSERS) | {
    "password",
    "username",
    "client_name",
    "ssl_cert_reqs",
    "ssl_ca_certs",
    "ssl_certfile",
    "ssl_keyfile",
}
"""The query options handed to redis-py as they are."""


def split_query(
    query: str, ours: Sequence[str], flag: str
) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """``query``'s options named in ``ours`` (by name), and redis-py's (in order). ConfigError,
    naming ``flag`` and both lists, for any other."""
    mine: dict[str, str] = {}
    theirs: list[tuple[str, str]] = []
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name in ours:
            mine[name] = value
        elif name in PASSED:
            theirs.append((name, value))
        else:
            raise ConfigError(
                f"{flag}: unknown option ?{name}= in the Redis URL; tgrunner's are "
                f"{', '.join(ours)}, and redis-py's {', '.join(sorted(PASSED))}"
            )
    return mine, theirs
