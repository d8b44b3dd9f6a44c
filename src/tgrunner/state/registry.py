"""Backends by name, and :func:`open_store`, which picks one from a URL.

A backend's module, and its driver, is imported only when its URL is given; a missing driver
is a ConfigError naming the pip extra that brings it.
"""

from __future__ import annotations

import importlib
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from tgrunner.errors import ConfigError
from tgrunner.state.api import Backend, StoreOptions
from tgrunner.state.store import Store

__all__ = ["BACKENDS", "SCHEMES", "check_url", "open_store", "safe_url"]

BACKENDS = {
    "sqlite": "tgrunner.state.backends.sqlite:SQLiteBackend",
    "postgresql": "tgrunner.state.backends.postgresql:PostgresBackend",
    "mysql": "tgrunner.state.backends.mysql:MySQLBackend",
    "redis": "tgrunner.state.backends.redis:RedisBackend",
    "memory": "tgrunner.state.backends.memory:MemoryBackend",
}
"""Backend name → ``"module:class"``; the class is built with ``(url, options)``: the URL
without the store's options, and the :class:`StoreOptions`."""

SCHEMES = {
    "sqlite": "sqlite",
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "mysql": "mysql",
    "mariadb": "mysql",
    "redis": "redis",
    "rediss": "redis",
    "valkey": "redis",
    "valkeys": "redis",
    "unix": "redis",
    "memory": "memory",
}
"""URL scheme → backend name."""

_EXTRAS = {"postgresql": "postgres", "mysql": "mysql", "redis": "redis"}
# Drivers take their own query parameters (sslmode, ssl_cert_reqs...); SQLite and memory have
# none, so anything that is not a store option there is a mistake.
_DRIVER_QUERY = {"postgresql", "redis"}


def safe_url(url: str) -> str:
    """``url`` without its password and query, for messages and logs."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        name = user.partition(":")[0]
        netloc = f"{name}@{host}" if name else host
    return f"{parts.scheme}://{netloc}{parts.path}"


def check_url(url: str) -> str:
    """``url`` (stripped) when it is a state store URL with known options, without importing
    its driver or connecting; ConfigError saying what is wrong otherwise."""
    url = url.strip()
    _backend_of(url)
    return url


def _backend_of(url: str) -> tuple[str, StoreOptions]:
    parts = urlsplit(url)
    backend = SCHEMES.get(parts.scheme.lower())
    if backend is None or "://" not in url:
        raise ConfigError(
            f"{safe_url(url)!r} is not a state store URL: give sqlite:///PATH, "
            "postgresql://HOST/DB, mysql://HOST/DB, redis://HOST:PORT/DB or memory://"
        )
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    return backend, StoreOptions.from_query(query, allow_extra=backend in _DRIVER_QUERY)


def open_store(url: str, **options: Any) -> Store:
    """The store at ``url``; it connects at its first use (or ``await store.open()``).

    - ``sqlite:///PATH`` (``sqlite:////abs/path`` for an absolute path): one machine, many
      processes; the file is created when missing.
    - ``postgresql://user:pass@host:5432/db`` (asyncpg; ``pip install 'tgrunner[postgres]'``).
    - ``mysql://user:pass@host:3306/db`` or ``mariadb://`` (aiomysql; ``tgrunner[mysql]``).
    - ``redis://host:6379/0``, ``rediss://``, ``unix://``, ``valkey://`` (redis-py;
      ``tgrunner[redis]``).
    - ``memory://`` (this process only, for tests; ``memory://NAME`` is shared by every store
      of that name in the process).

    Options (:class:`StoreOptions`) come from the query (``?lock_timeout=5``) or as keyword
    arguments, which win. ConfigError for an unknown scheme or option, or a missing driver.
    """
    backend, opts = _backend_of(url)
    if options:
        unknown = set(options) - set(StoreOptions.__dataclass_fields__) - {"extra"}
        if unknown:
            raise ConfigError(f"open_store: unknown option(s) {', '.join(sorted(unknown))}")
        values = {name: getattr(opts, name) for name in StoreOptions.__dataclass_fields__}
        opts = StoreOptions(**{**values, **options})
        opts.validate()
    rest = urlencode(opts.extra)
    # Cut by hand: urlunsplit would turn sqlite:////abs into sqlite://abs.
    bare = url.partition("#")[0].partition("?")[0] + (f"?{rest}" if rest else "")
    module_name, _, attr = BACKENDS[backend].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if exc.name is not None and exc.name.startswith("tgrunner"):
            raise
        raise ConfigError(
            f"the {backend} state store needs {exc.name}, which is not installed: "
            f"pip install 'tgrunner[{_EXTRAS.get(backend, backend)}]'"
        ) from None
    instance: Backend = getattr(module, attr)(bare, opts)
    return Store(instance, opts)
