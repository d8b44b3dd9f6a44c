"""open_shared: a backend by URL scheme, its module imported only when chosen, and a bad URL
answered with what to give."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tgrunner.errors import ConfigError
from tgrunner.flood.backends.file import FileBuckets
from tgrunner.flood.backends.redis import DEFAULT_PREFIX, RedisBuckets
from tgrunner.flood.shared import BACKENDS, SCHEMES, bucket_file, open_shared

pytestmark = pytest.mark.timeout(30)


async def test_a_file_url_opens_a_bucket_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    absolute = open_shared(f"file://{tmp_path}/flood.buckets")
    assert isinstance(absolute, FileBuckets) and absolute.path == tmp_path / "flood.buckets"
    assert (tmp_path / "flood.buckets").exists()
    monkeypatch.chdir(tmp_path)
    relative = open_shared("file:here.buckets")
    assert isinstance(relative, FileBuckets) and relative.path == Path("here.buckets")
    spaced = open_shared(f"file://localhost{tmp_path}/with%20space")
    assert isinstance(spaced, FileBuckets) and spaced.path.name == "with space"
    for buckets in (absolute, relative, spaced):
        await buckets.close()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("rediss://:pw@cache.example:6380/2", "rediss://:***@cache.example:6380/2"),
        ("valkey://user:pw@127.0.0.1:6379/1", "redis://user:***@127.0.0.1:6379/1"),
        ("unix:///run/redis.sock?db=3&password=pw", "unix:///run/redis.sock?db=3&password=***"),
        ("  REDIS://127.0.0.1/0?socket_timeout=2  ", "redis://127.0.0.1/0?socket_timeout=2"),
    ],
)
async def test_redis_urls_open_redis_buckets_without_connecting(url: str, shown: str) -> None:
    buckets = open_shared(url)
    assert isinstance(buckets, RedisBuckets)
    assert buckets.url.lower() == shown.lower() and buckets.prefix == DEFAULT_PREFIX
    await buckets.close()


async def test_the_prefix_is_the_urls_else_the_one_given_else_the_default() -> None:
    given = open_shared("redis://127.0.0.1/0", prefix="tgrunner:flood:123:")
    in_url = open_shared("redis://127.0.0.1/0?prefix=mine:", prefix="tgrunner:flood:123:")
    assert (given.prefix, in_url.prefix) == ("tgrunner:flood:123:", "mine:")  # type: ignore[attr-defined]
    assert "prefix" not in in_url.url  # type: ignore[attr-defined]
    for buckets in (given, in_url):
        await buckets.close()


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("", "not a flood store URL: give redis://HOST:PORT/DB"),
        ("http://127.0.0.1:6379", "not a flood store URL"),
        ("redis:127.0.0.1", "not a flood store URL"),
        ("127.0.0.1:6379", "not a flood store URL"),
        ("memcached://:hunter2@h/0", "not a flood store URL"),
        ("file://otherhost/srv/flood.buckets", "no host and no options"),
        ("file:///srv/flood.buckets?slots=9", "no host and no options"),
        ("file://", "give file:///ABS/PATH"),
        ("redis://127.0.0.1/0?qeue=x", r"unknown option \?qeue="),
        ("redis://127.0.0.1/0?recheck=-1", "recheck"),
        ("redis://127.0.0.1/0?recheck=soon", "recheck"),
        ("redis://127.0.0.1/0?socket_timeout=abc", "socket_timeout"),
    ],
)
def test_a_bad_url_says_what_to_give(url: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says) as raised:
        open_shared(url)
    assert "hunter2" not in str(raised.value)


def test_every_scheme_names_a_backend_and_modules_load_only_when_chosen() -> None:
    assert set(SCHEMES.values()) <= set(BACKENDS)
    code = (
        "import sys, tgrunner.flood.shared as s\n"
        "assert 'redis' not in sys.modules and 'tgrunner.flood.backends.redis' not in sys.modules\n"
        "assert 'tgrunner.flood.backends.file' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=20)


async def test_the_bucket_file_of_a_bot_is_in_its_data_dir(tmp_path: Path) -> None:
    path = bucket_file(tmp_path, 123)
    assert path == tmp_path / "123" / "flood.buckets" and path.parent.is_dir()
    buckets = open_shared(path.as_uri())
    assert isinstance(buckets, FileBuckets) and buckets.path == path
    await buckets.close()
