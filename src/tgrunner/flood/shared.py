"""Token buckets shared by processes and machines, picked by URL.

::

    buckets = open_shared("redis://127.0.0.1:6379/0")     # or file:///srv/bot/flood.buckets
    wait = await buckets.reserve("bulk", Rate(30.0, burst=30))
    await buckets.pause("chat:42", 7.0)
    await buckets.close()

Every backend has the semantics of :mod:`tgrunner.flood.buckets` (GCRA reservations, pauses
as "no slot before its end"), behind the :class:`~tgrunner.protocols.SharedBuckets` protocol:

- ``file``: :class:`~tgrunner.flood.backends.file.FileBuckets`, the worker processes of one
  machine (an mmap'd file under an ``flock``; microseconds a reservation);
- ``redis``: :class:`~tgrunner.flood.backends.redis.RedisBuckets`, any number of machines
  (one Lua round trip a reservation, on the server's clock).

A backend's module, and its driver, is imported only when its URL is given.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from tgrunner.errors import ConfigError
from tgrunner.protocols import SharedBuckets

__all__ = ["BACKENDS", "FILE_NAME", "SCHEMES", "SharedBuckets", "bucket_file", "open_shared"]

BACKENDS = {
    "file": "tgrunner.flood.backends.file:FileBuckets",
    "redis": "tgrunner.flood.backends.redis:RedisBuckets",
}
"""Backend name → ``"module:class"``. ``file`` is built with the file's path, ``redis`` with
the URL and ``prefix=``."""

SCHEMES = {
    "file": "file",
    "redis": "redis",
    "rediss": "redis",
    "unix": "redis",
    "valkey": "redis",
    "valkeys": "redis",
}
"""URL scheme → backend name."""

_EXTRAS = {"redis": "redis"}

FILE_NAME = "flood.buckets"
"""The bucket file's name in a bot's data dir."""


def bucket_file(data_dir: str | os.PathLike[str], bot_id: int) -> Path:
    """``<data_dir>/<bot_id>/flood.buckets``, where a bot's worker processes share their global
    buckets (the folder is created when missing); give it to
    :class:`~tgrunner.flood.backends.file.FileBuckets`."""
    folder = Path(data_dir) / str(bot_id)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / FILE_NAME


def open_shared(url: str, *, prefix: str | None = None) -> SharedBuckets:
    """The shared buckets at ``url``:

    - ``redis://[:PASSWORD@]HOST:PORT/DB`` (also ``rediss://``, ``unix://PATH?db=N``,
      ``valkey://``): Redis/Valkey, shared by machines; its options are
      :class:`~tgrunner.flood.backends.redis.RedisBuckets`'s (``?prefix=``,
      ``?connect_timeout=``, ``?timeout=``). ``prefix`` is the keys' prefix when the URL gives
      none (default ``tgrunner:flood:``); give each bot its own.
    - ``file:///ABS/PATH`` or ``file:REL/PATH``: a bucket file for the processes of one
      machine (created when missing; ``prefix`` does not apply, the file is the namespace).

    The file is opened at once; Redis is connected at the first call. ConfigError, saying what
    to give, for a URL of no backend or a missing driver.
    """
    url = url.strip()
    parts = urlsplit(url)
    backend = SCHEMES.get(parts.scheme.lower())
    if backend is None or (backend == "redis" and "://" not in url):
        raise ConfigError(
            f"--flood-store {_shown(url)!r} is not a flood store URL: give "
            "redis://HOST:PORT/DB (Valkey/Redis, shared by machines; also rediss://, "
            "unix://PATH), or file:///PATH (the processes of one machine)"
        )
    cls = _backend_class(backend)
    if backend == "file":
        if parts.netloc not in ("", "localhost") or not parts.path or parts.query:
            raise ConfigError(
                f"--flood-store {url!r}: give file:///ABS/PATH or file:REL/PATH, a path on "
                "this machine with no host and no options"
            )
        buckets: SharedBuckets = cls(unquote(parts.path))
    elif prefix is None:
        buckets = cls(url)
    else:
        buckets = cls(url, prefix=prefix)
    return buckets


def _backend_class(backend: str) -> Any:
    module_name, _, attr = BACKENDS[backend].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if exc.name is not None and exc.name.startswith("tgrunner"):
            raise
        raise ConfigError(
            f"the {backend} flood store needs {exc.name}, which is not installed: "
            f"pip install 'tgrunner[{_EXTRAS.get(backend, backend)}]'"
        ) from None
    return getattr(module, attr)


def _shown(url: str) -> str:
    """``url`` without a password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{parts.username or ''}:***@{host}").geturl()
