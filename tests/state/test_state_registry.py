"""open_store: backends by name, options from the URL, clear errors for what cannot work."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import tgrunner.errors
import tgrunner.state
from tgrunner.errors import ConfigError, StateConflict, StateError, StateUnavailable
from tgrunner.state import BACKENDS, StoreOptions, open_store
from tgrunner.state.api import Retry, retrying
from tgrunner.state.registry import SCHEMES, safe_url

pytestmark = pytest.mark.timeout(30)


def test_exports_and_error_hierarchy() -> None:
    assert set(tgrunner.state.__all__) == {
        "BACKENDS", "MAX_KEY_BYTES", "Store", "StoreOptions", "StoredDict", "Transaction",
        "current_store", "open_store", "use_store",
    }  # fmt: skip
    for name in tgrunner.state.__all__:
        assert hasattr(tgrunner.state, name)
    assert {"StateError", "StateConflict", "StateUnavailable"} <= set(tgrunner.errors.__all__)
    assert issubclass(StateConflict, StateError) and issubclass(StateUnavailable, StateError)
    assert "StateConflict" in (tgrunner.errors.__doc__ or "")
    assert set(SCHEMES.values()) == set(BACKENDS)


def test_options_come_from_the_query_and_keywords(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/a.db?retries=3&lock_timeout=2.5", pool_size=4)
    assert (store.options.retries, store.options.lock_timeout, store.options.pool_size) == (
        3, 2.5, 4,
    )  # fmt: skip
    assert store.url == f"sqlite:///{tmp_path}/a.db"
    assert open_store("memory://").options == StoreOptions()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://host/x", "not a state store URL"),
        ("bank.db", "not a state store URL"),
        ("memory://?colour=red", "unknown option 'colour'"),
        ("memory://?retries=many", "retries='many' is not a int"),
        ("memory://?lock_timeout=0", "must be > 0"),
        ("memory://?table=drop;table", "letters, digits"),
        ("memory://?synchronous=off", "'normal' or 'full'"),
        ("sqlite://", "give sqlite:///PATH"),
        ("sqlite:///:memory:", "memory://"),
        ("sqlite:////no/such/folder/x.db", "does not exist"),
        ("mysql://127.0.0.1", "mysql://USER:PASS@HOST:PORT/DB"),
    ],
)
def test_bad_urls_are_config_errors(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        open_store(url)


def test_unknown_keyword_option_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown option"):
        open_store("memory://", colour="red")


def test_a_missing_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "asyncmy", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "tgrunner.state.backends.mysql", raising=False)
    with pytest.raises(ConfigError, match=r"pip install 'tgrunner\[mysql\]'"):
        open_store("mysql://root@127.0.0.1/test")


def test_the_driver_is_imported_only_when_chosen(tmp_path: Path) -> None:
    import subprocess

    code = (
        "import sys; from tgrunner.state import open_store; "
        f"open_store('sqlite:///{tmp_path}/a.db'); open_store('memory://'); "
        "print(sorted(m for m in ('asyncpg', 'asyncmy', 'redis') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_safe_url_hides_the_password() -> None:
    assert safe_url("postgresql://bob:s3cret@db:5432/app?sslmode=require") == (
        "postgresql://bob@db:5432/app"
    )
    assert safe_url("redis://:s3cret@cache:6379/2") == "redis://cache:6379/2"


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://user:s3cret@127.0.0.1:1/test",
        "mysql://user:s3cret@127.0.0.1:1/test",
        "redis://:s3cret@127.0.0.1:1/0",
    ],
)
async def test_unreachable_server_is_state_unavailable(url: str) -> None:
    store = open_store(url, connect_timeout=2)
    with pytest.raises(StateUnavailable) as info:
        await store.set("a", 1)  # the first use opens
    assert "s3cret" not in str(info.value) and "127.0.0.1:1" in str(info.value)
    with pytest.raises(StateUnavailable):
        await store.open()
    await store.close()


async def test_an_unwritable_sqlite_file_is_state_unavailable(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()  # a folder where the file should be
    store = open_store(f"sqlite:///{tmp_path}/dir.db")
    with pytest.raises(StateUnavailable, match="cannot open"):
        await store.get("a")
    await store.close()


async def test_a_closed_store_says_so() -> None:
    store = open_store("memory://")
    await store.set("a", 1)
    await store.close()
    with pytest.raises(StateError, match="is closed"):
        await store.get("a")


async def test_retries_are_bounded_then_a_conflict() -> None:
    calls = 0

    async def flaky(fails: int) -> str:
        nonlocal calls
        calls += 1
        if calls <= fails:
            raise Retry("40P01: deadlock detected")
        return "done"

    assert await retrying(lambda: flaky(2), 3, "locking 'a'") == "done"
    assert calls == 3
    calls = 0
    with pytest.raises(StateConflict, match=r"locking 'a': still conflicting after 3 retries"):
        await retrying(lambda: flaky(10), 3, "locking 'a'")
    assert calls == 4  # the first try and 3 retries
