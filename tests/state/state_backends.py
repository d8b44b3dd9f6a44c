"""Shared by the state tests: a store URL per backend, on the real services of this machine.

A plain module, not a conftest (a second conftest would shadow the root one's
``need_service``). Each URL has its own table or key prefix, so tests (and helpers running at
the same time) never see each other's data, and only that table or prefix is cleaned away.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services import need_service

SERVERS = {"postgresql": "postgres", "mysql": "mysql", "redis": "redis"}


def params(*names: str) -> list[object]:
    """``names`` for ``pytest.mark.parametrize``, those on a server marked ``services``."""
    return [pytest.param(n, marks=pytest.mark.services) if n in SERVERS else n for n in names]


BACKENDS = params("memory", "sqlite", "postgresql", "mysql", "redis")
"""Every backend, for ``pytest.mark.parametrize``."""
SPANNING = params("sqlite", "postgresql", "mysql", "redis")
"""The backends that span processes (memory lives in one)."""
REDIS_DB = 9  # a database of the state tests' own on the shared Redis


def url_of(backend: str, tmp_path: Path, **options: object) -> str:
    """A fresh store URL on ``backend`` (its own table, prefix or file), with ``options`` in
    its query; skips (or fails, under TGRUNNER_REQUIRE_SERVICES=1) when the service is down."""
    if backend in SERVERS:
        need_service(SERVERS[backend])
    tag = uuid.uuid4().hex[:12]
    query = "&".join(f"{k}={v}" for k, v in options.items())
    if backend == "memory":
        return f"memory://{tag}" + (f"?{query}" if query else "")
    if backend == "sqlite":
        base = f"sqlite:///{tmp_path / f'state-{tag}.db'}"
    elif backend == "postgresql":
        base = f"postgresql://127.0.0.1:5432/test?table=tgr_test_{tag}"
    elif backend == "mysql":
        base = f"mysql://root@127.0.0.1:3306/test?table=tgr_test_{tag}"
    else:
        base = f"redis://127.0.0.1:6379/{REDIS_DB}?prefix=tgrtest:{tag}:"
    if backend == "sqlite":
        return base + (f"?{query}" if query else "")
    return base + (f"&{query}" if query else "")


async def clean(url: str) -> None:
    """Drop the table, or delete the keys, that ``url`` names (SQLite's file goes with
    tmp_path; memory with the process)."""
    from tgrunner.state import open_store

    store = open_store(url, purge_interval=0)  # never opened: only its options are used
    if url.startswith("postgresql"):
        import asyncpg

        conn = await asyncpg.connect("postgresql://127.0.0.1:5432/test")
        try:
            await conn.execute(f"DROP TABLE IF EXISTS {store.options.table}")
        finally:
            await conn.close()
    elif url.startswith("mysql"):
        import asyncmy

        conn = await asyncmy.connect(host="127.0.0.1", port=3306, user="root", database="test")
        try:
            async with conn.cursor() as cur:
                await cur.execute(f"DROP TABLE IF EXISTS {store.options.table}")
        finally:
            conn.close()
    elif url.startswith("redis"):
        import redis.asyncio

        client = redis.asyncio.Redis(host="127.0.0.1", port=6379, db=REDIS_DB)
        try:
            prefix = store.options.prefix
            names = [name async for name in client.scan_iter(match=f"{prefix}*", count=1000)]
            if names:
                await client.delete(*names)
        finally:
            await client.aclose()


@contextlib.asynccontextmanager
async def fresh_url(backend: str, tmp_path: Path, **options: object) -> AsyncIterator[str]:
    """:func:`url_of`, cleaned away at the end."""
    url = url_of(backend, tmp_path, **options)
    try:
        yield url
    finally:
        await clean(url)
