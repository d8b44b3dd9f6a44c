"""``tgrunner jobs``: counts per state, ``show``, ``list``, ``retry`` and ``cancel`` on a bot's
embedded queue (a JobStore in the test's data dir, filled as a bot and a worker would), the
queue found by token, by ``--bot-id``, as the only one, or by ``--jobs``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_support import in_process
from tgrunner.jobs import JobStore

pytestmark = pytest.mark.timeout(30)

BOT = 123456
TOKEN = f"{BOT}:AAsecret"
TARGET = {"chat_id": 42, "message_id": 7, "message_thread_id": 3}


@pytest.fixture
def store(data_dir: Path) -> Iterator[JobStore]:
    folder = data_dir / str(BOT)
    folder.mkdir()
    with JobStore(folder / "jobs.sqlite") as found:
        yield found


def _fill(store: JobStore) -> dict[str, str]:
    """One job per state but scheduled: ``queued``, ``started``, ``finished``, ``failed``,
    ``canceled``; returns their ids by state."""
    ids = {
        state: store.enqueue("bot:render", b"x", reply_to=TARGET)
        for state in ("finished", "failed", "started", "canceled", "queued")
    }
    for state in ("finished", "failed", "started"):
        claimed = store.claim("w1")
        assert claimed is not None and claimed.id == ids[state]
    assert store.finish(ids["finished"], "w1", b"result", reply_sent=True)
    assert store.fail(ids["failed"], "w1", "ValueError: boom", retry_delay=None)
    assert store.cancel(ids["canceled"])
    return ids


def test_jobs_counts_each_state(
    capsys: pytest.CaptureFixture[str], store: JobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fill(store)
    monkeypatch.setenv("TGRUNNER_TOKEN", TOKEN)
    code, out, err = in_process(capsys, "jobs")
    assert (code, err) == (0, ""), err
    lines = out.splitlines()
    assert lines[0] == f"sqlite:///{store.path}:", out
    counts = dict(line.split() for line in lines[1:])
    assert counts == {"queued": "1", "scheduled": "0", "started": "1", "finished": "1",
                      "failed": "1", "canceled": "1"}  # fmt: skip


def test_the_queue_is_found_by_bot_id_as_the_only_one_and_by_url(
    capsys: pytest.CaptureFixture[str], store: JobStore
) -> None:
    store.enqueue("bot:render", b"x")
    for args in (["--bot-id", str(BOT)], [], ["--jobs", f"sqlite:///{store.path}"]):
        code, out, err = in_process(capsys, "jobs", *args)
        assert (code, err) == (0, ""), (args, err)
        assert "queued     1" in out, out


def test_show_prints_the_job(
    capsys: pytest.CaptureFixture[str], store: JobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _fill(store)
    monkeypatch.setenv("BOT_TOKEN", TOKEN)
    code, out, err = in_process(capsys, "jobs", "show", ids["failed"])
    assert (code, err) == (0, ""), err
    fields = _fields(out)
    assert fields["id"] == ids["failed"]
    assert fields["state"] == "failed" and fields["function"] == "bot:render"
    assert fields["attempts"] == "1" and fields["error"] == "ValueError: boom"
    assert fields["reply to"] == "chat 42, message 7, topic 3"
    assert fields["queued"] != "-" and fields["ended"] != "-"
    code, out, _ = in_process(capsys, "jobs", "show", ids["queued"], "--token", TOKEN)
    assert code == 0 and _fields(out)["ended"] == _fields(out)["error"] == "-", out


def _fields(out: str) -> dict[str, str]:
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines())}


def test_list_shows_the_jobs_of_a_state(
    capsys: pytest.CaptureFixture[str], store: JobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _fill(store)
    monkeypatch.setenv("TGRUNNER_TOKEN", TOKEN)
    code, out, err = in_process(capsys, "jobs", "list", "failed")
    assert (code, err) == (0, ""), err
    assert "1 failed job(s) shown" in out
    assert ids["failed"] in out and "ValueError: boom" in out
    assert ids["queued"] not in out


def test_retry_and_cancel_act_on_one_job_and_refuse_the_wrong_state(
    capsys: pytest.CaptureFixture[str], store: JobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _fill(store)
    monkeypatch.setenv("TGRUNNER_TOKEN", TOKEN)
    code, out, err = in_process(capsys, "jobs", "retry", ids["failed"])
    assert (code, out, err) == (0, f"job {ids['failed']} queued again\n", "")
    again = store.get(ids["failed"])
    assert again is not None and again.state == "queued"
    code, out, err = in_process(capsys, "jobs", "cancel", ids["queued"])
    assert (code, out, err) == (0, f"job {ids['queued']} canceled\n", "")
    code, out, err = in_process(capsys, "jobs", "cancel", ids["started"])
    assert (code, out) == (1, "")
    assert err == (f"tgrunner: job {ids['started']} is started: only a queued or scheduled job "
                   "can be canceled\n")  # fmt: skip
    code, out, err = in_process(capsys, "jobs", "retry", ids["finished"])
    assert code == 1 and "is finished: only a failed or canceled job can be queued again" in err


def test_an_unknown_id_is_exit_1_with_one_line(
    capsys: pytest.CaptureFixture[str], store: JobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.enqueue("bot:render", b"x")
    monkeypatch.setenv("TGRUNNER_TOKEN", TOKEN)
    for action in ("show", "retry", "cancel"):
        code, out, err = in_process(capsys, "jobs", action, "nosuchjob")
        assert (code, out) == (1, ""), action
        assert err == (f"tgrunner: no job nosuchjob in sqlite:///{store.path}: it never was, or "
                       "its result's time to live ended\n")  # fmt: skip


def test_options_after_the_action_win_over_those_before(
    capsys: pytest.CaptureFixture[str], store: JobStore, tmp_path: Path
) -> None:
    job = store.enqueue("bot:render", b"x")
    other = tmp_path / "elsewhere"
    other.mkdir()
    code, out, err = in_process(
        capsys, "jobs", "--data-dir", str(other), "show", job, "--data-dir",
        os.environ["TGRUNNER_DATA_DIR"], "--bot-id", str(BOT),
    )  # fmt: skip
    assert (code, err) == (0, ""), err
    assert _fields(out)["state"] == "queued"


def test_no_queue_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TGRUNNER_TOKEN", TOKEN)
    code, out, err = in_process(capsys, "jobs")
    assert (code, out) == (2, "")
    assert err.startswith(f"tgrunner: Bot {BOT} has no job queue in "), err
    monkeypatch.delenv("TGRUNNER_TOKEN")
    code, _, err = in_process(capsys, "jobs")
    assert code == 2 and "holds the job queues of 0 bots (none)" in err, err
