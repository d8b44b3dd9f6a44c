"""The job worker in this process, over real HTTP against FakeTelegram: replies, files,
status messages, progress, failures and retries, time limits."""

from __future__ import annotations

import asyncio
import pickle
import time
from typing import Any

import job_tasks
import pytest
from job_env import Jobs

from tgrunner.errors import JobFailed
from tgrunner.jobs import DEFAULT_FAILURE_MESSAGE, on_failure
from tgrunner.jobs.execute import remove_failure_hook
from tgrunner.jobs.worker import EXIT_REPLACE

pytestmark = pytest.mark.timeout(30)


def reply_of(message: dict[str, Any]) -> dict[str, Any]:
    return {"message_id": message["message_id"], "allow_sending_without_reply": True}


async def test_text_reply_answers_the_message(jobs: Jobs) -> None:
    ann = jobs.tg.user("Ann")
    asked = ann.send("say hi")
    job = await job_tasks.echo.enqueue("hi", reply_to=asked)
    other = await job_tasks.aecho.enqueue("hello", reply_to=ann.send("and you"))
    worker = await jobs.drain()
    [sent] = jobs.sent("sendMessage", asked["message_id"])
    assert sent["chat_id"] == ann.chat.id
    assert sent["text"] == "hi"
    assert sent["reply_parameters"] == reply_of(asked)
    assert await job.status() == "finished"
    assert await job.result(timeout=1) == "hi"
    assert await other.result(timeout=1) == "hello"
    record = jobs.store.get(job.id)
    assert record is not None and record.reply_sent
    assert worker.stats.finished == 2 and worker.stats.claimed == 2


async def test_none_sends_nothing(jobs: Jobs) -> None:
    job = await job_tasks.nothing.enqueue(reply_to=jobs.tg.user("Ann").send("x"))
    await jobs.drain()
    assert jobs.sent("sendMessage") == []
    assert await job.result(timeout=1) is None


async def test_photo_and_document_replies(jobs: Jobs) -> None:
    ann = jobs.tg.user("Ann")
    asked = ann.send("a picture please")
    await job_tasks.photo.enqueue("a cat", reply_to=asked)
    await job_tasks.document.enqueue("notes.txt", reply_to=asked)
    await jobs.drain()
    [photo] = jobs.sent("sendPhoto", asked["message_id"])
    assert photo["caption"] == "a cat" and photo["chat_id"] == ann.chat.id
    [doc] = jobs.sent("sendDocument", asked["message_id"])
    assert doc["caption"] == "notes.txt"
    assert jobs.sent("sendMessage") == []


async def test_status_message_is_edited_into_the_result(jobs: Jobs) -> None:
    ann = jobs.tg.user("Ann")
    asked = ann.send("render")
    status = await jobs.bot.send_message(ann.chat.id, "⏳ Processing…")
    await job_tasks.echo.enqueue("rendered", reply_to=asked, status_message=status)
    await jobs.drain()
    [edit] = jobs.sent("editMessageText")
    assert (edit["message_id"], edit["text"]) == (status["message_id"], "rendered")
    assert len(jobs.sent("sendMessage")) == 1  # the status message itself, sent above


async def test_a_file_result_replaces_the_status_message(jobs: Jobs) -> None:
    ann = jobs.tg.user("Ann")
    asked = ann.send("render")
    status = await jobs.bot.send_message(ann.chat.id, "⏳ Processing…")
    await job_tasks.photo.enqueue("done", reply_to=asked, status_message=status)
    await jobs.drain()
    assert len(jobs.sent("sendPhoto", asked["message_id"])) == 1
    [deleted] = jobs.sent("deleteMessage")
    assert deleted["message_id"] == status["message_id"]


async def test_a_deleted_status_message_gets_a_new_reply(jobs: Jobs) -> None:
    ann = jobs.tg.user("Ann")
    asked = ann.send("render")
    status = await jobs.bot.send_message(ann.chat.id, "⏳ Processing…")
    await jobs.bot.delete_message(ann.chat.id, status["message_id"])
    await job_tasks.echo.enqueue("here it is", reply_to=asked, status_message=status)
    await jobs.drain()
    assert [r.status for r in jobs.tg.calls("editMessageText")] == [400]
    [reply] = jobs.sent("sendMessage", asked["message_id"])
    assert reply["text"] == "here it is"


async def test_progress_edits_one_status_message_then_the_result(jobs: Jobs) -> None:
    ann = jobs.tg.user("Ann")
    asked = ann.send("work")
    job = await job_tasks.progressing.enqueue(3, reply_to=asked)
    await jobs.drain()
    [first] = jobs.sent("sendMessage", asked["message_id"])
    assert first["text"] == "33%"
    status_id = jobs.tg.replies(ann.chat.id)[0]["message_id"]
    edits = jobs.sent("editMessageText")
    assert [e["text"] for e in edits] == ["66%", "100%", "all done"]
    assert {e["message_id"] for e in edits} == {status_id}
    record = jobs.store.get(job.id)
    assert record is not None and record.reply_to is not None
    assert record.reply_to["status_message_id"] == status_id


async def test_a_run_after_a_death_edits_the_same_status_message(jobs: Jobs) -> None:
    ann = jobs.tg.user("Ann")
    asked = ann.send("work")
    job = await job_tasks.progressing.enqueue(2, reply_to=asked)
    # A first run showed progress, recorded its status message, then its worker died (a
    # lease already past its end).
    shown = await jobs.bot.send_message(ann.chat.id, "50%")
    assert jobs.store.claim("dead", lease_seconds=-1.0) is not None
    assert jobs.store.set_status_message(job.id, "dead", shown["message_id"])
    await jobs.drain()
    edits = jobs.tg.calls("editMessageText")
    # "50%" again is "not modified" (Telegram's 400), which counts as shown.
    assert [(e.params["text"], e.status) for e in edits] == [
        ("50%", 400),
        ("100%", 200),
        ("all done", 200),
    ]
    assert {e.params["message_id"] for e in edits} == {shown["message_id"]}
    assert jobs.sent("sendMessage", asked["message_id"]) == []
    record = jobs.store.get(job.id)
    assert record is not None and (record.state, record.deaths) == ("finished", 1)


async def test_sync_progress_and_send_from_the_thread(jobs: Jobs) -> None:
    ann = jobs.tg.user("Ann")
    asked = ann.send("work")
    await job_tasks.progressing_sync.enqueue(reply_to=asked)
    await jobs.drain()
    texts = [p["text"] for p in jobs.sent("sendMessage", asked["message_id"])]
    assert texts == ["half", "a note"]
    [edit] = jobs.sent("editMessageText")
    assert edit["text"] == "finished"


async def test_context_send_replies_as_it_goes(jobs: Jobs) -> None:
    ann = jobs.tg.user("Ann")
    asked = ann.send("talk")
    await job_tasks.chatty.enqueue(reply_to=asked)
    await jobs.drain()
    assert [p["text"] for p in jobs.sent("sendMessage", asked["message_id"])] == ["one"]
    assert [p["caption"] for p in jobs.sent("sendDocument", asked["message_id"])] == ["two"]


async def test_retries_with_backoff_then_success(jobs: Jobs) -> None:
    asked = jobs.tg.user("Ann").send("try")
    job = await job_tasks.flaky.enqueue(2, "made it", reply_to=asked)
    began = time.monotonic()
    worker = await jobs.drain()
    # backoff 0.05 s, doubled: 0.05 then 0.1 before the third try.
    assert time.monotonic() - began >= 0.15
    [reply] = jobs.sent("sendMessage", asked["message_id"])
    assert reply["text"] == "made it on try 3"
    record = jobs.store.get(job.id)
    assert record is not None and (record.state, record.attempts) == ("finished", 2)
    assert (worker.stats.retried, worker.stats.finished) == (2, 1)


async def test_failure_message_exactly_once_after_the_last_retry(jobs: Jobs) -> None:
    seen: list[tuple[str, str, BaseException]] = []

    @on_failure
    async def hook(job_id: str, task: str, error: BaseException) -> None:
        seen.append((job_id, task, error))

    try:
        asked = jobs.tg.user("Ann").send("try")
        job = await job_tasks.flaky.enqueue(9, "never", reply_to=asked)
        worker = await jobs.drain()
    finally:
        remove_failure_hook(hook)
    [reply] = jobs.sent("sendMessage", asked["message_id"])
    assert reply["text"] == "gave up"
    with pytest.raises(JobFailed, match="try 3 fails"):
        await job.result(timeout=1)
    record = jobs.store.get(job.id)
    assert record is not None
    assert (record.state, record.attempts, record.reply_sent) == ("failed", 3, True)
    assert (worker.stats.retried, worker.stats.failed) == (2, 1)
    [(job_id, task, error)] = seen
    assert (job_id, task) == (job.id, "job_tasks:flaky")
    assert isinstance(error, ValueError)


async def test_a_hook_that_raises_is_logged(jobs: Jobs, watch_log: Any) -> None:
    calls: list[str] = []

    def bad(job_id: str, task: str, error: BaseException) -> None:
        calls.append(job_id)
        raise RuntimeError("hook broke")

    logged = watch_log("failure hook .* raised")
    on_failure(bad)
    try:
        job = await job_tasks.silent_failure.enqueue(reply_to=jobs.tg.user("Ann").send("x"))
        await jobs.drain()
    finally:
        remove_failure_hook(bad)
    await logged.wait()
    assert calls == [job.id]
    assert await job.status() == "failed"
    assert jobs.sent("sendMessage") == []  # failure_message=None: the user is told nothing


async def test_a_function_that_cannot_be_imported_fails_at_once(jobs: Jobs) -> None:
    asked = jobs.tg.user("Ann").send("x")
    target = {"chat_id": asked["chat"]["id"], "message_id": asked["message_id"]}
    payload = pickle.dumps(((), {}))
    gone = jobs.store.enqueue("job_tasks:renamed", payload, retries=3, reply_to=target)
    garbled = jobs.store.enqueue("job_tasks:echo", b"not a pickle", retries=3, reply_to=target)
    await jobs.drain()
    for job_id, error in ((gone, "cannot run job_tasks:renamed"), (garbled, "cannot be loaded")):
        record = jobs.store.get(job_id)
        assert record is not None and record.error is not None
        assert (record.state, record.attempts) == ("failed", 1)  # no retry
        assert error in record.error
    texts = [p["text"] for p in jobs.sent("sendMessage", asked["message_id"])]
    assert texts == [DEFAULT_FAILURE_MESSAGE] * 2


async def test_a_result_that_does_not_pickle_is_still_sent(jobs: Jobs, watch_log: Any) -> None:
    logged = watch_log("does not pickle")
    asked = jobs.tg.user("Ann").send("x")
    job = await job_tasks.unpicklable.enqueue(reply_to=asked)
    await jobs.drain()
    await logged.wait()
    [reply] = jobs.sent("sendMessage", asked["message_id"])
    assert reply["text"] == "made it" and "reply_markup" in reply
    assert await job.status() == "finished"
    assert await job.result(timeout=1) is None


async def test_a_result_that_is_no_reply_fails(jobs: Jobs) -> None:
    asked = jobs.tg.user("Ann").send("x")
    job = await job_tasks.wrong_type.enqueue(reply_to=asked)
    await jobs.drain()
    with pytest.raises(JobFailed, match="returned int"):
        await job.result(timeout=1)
    assert [p["text"] for p in jobs.sent("sendMessage")] == [DEFAULT_FAILURE_MESSAGE]


async def test_async_timeout_cancels_the_run(jobs: Jobs) -> None:
    asked = jobs.tg.user("Ann").send("x")
    job = await job_tasks.slow_async.enqueue(10.0, reply_to=asked)
    began = time.monotonic()
    worker = await jobs.drain()  # exit code 0: nothing is stuck
    assert time.monotonic() - began < 5
    with pytest.raises(JobFailed, match=r"timed out after 0\.3 s"):
        await job.result(timeout=1)
    assert [p["text"] for p in jobs.sent("sendMessage")] == ["too slow"]
    assert worker.stats.failed == 1


async def test_sync_timeout_asks_to_replace_the_worker(jobs: Jobs) -> None:
    asked = jobs.tg.user("Ann").send("x")
    job = await job_tasks.slow_sync.enqueue(20.0, reply_to=asked)
    later = await job_tasks.echo.enqueue("after", reply_to=asked)
    worker = jobs.worker()
    async with asyncio.timeout(10):
        assert await worker.serve() == EXIT_REPLACE
    with pytest.raises(JobFailed, match="timed out"):
        await job.result(timeout=1)
    assert [p["text"] for p in jobs.sent("sendMessage")] == ["too slow"]
    # It took no job after: the next worker does.
    assert await later.status() == "queued"
    await jobs.drain()
    assert await later.result(timeout=1) == "after"


async def test_a_task_ignoring_its_cancellation_asks_to_replace_the_worker(jobs: Jobs) -> None:
    job = await job_tasks.stubborn.enqueue(reply_to=jobs.tg.user("Ann").send("x"))
    worker = jobs.worker()
    async with asyncio.timeout(10):
        assert await worker.serve() == EXIT_REPLACE
    assert await job.status() == "failed"
    assert [p["text"] for p in jobs.sent("sendMessage")] == ["too slow"]
    await asyncio.to_thread(job_tasks.stubborn_done.wait, 10)
