"""Tasks the job worker tests run, in-process and in worker processes (imported as
``job_tasks``: this folder is on ``sys.path``, and worker processes get ``--path`` to it)."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from typing import Any

from tgrunner.jobs import JobContext, Reply, task

# In-process tests hold a job at a point of their choosing with these.
gate = threading.Event()
started = threading.Event()
stubborn_done = threading.Event()
async_gate: asyncio.Event | None = None
held_now = 0  # held() runs now
want = 1  # held() sets `enough` once this many run at once
enough = threading.Event()


def reset() -> None:
    """Fresh gates for a test (async_gate on the running loop)."""
    global async_gate, held_now, want
    held_now, want = 0, 1
    enough.clear()
    gate.clear()
    started.clear()
    stubborn_done.clear()
    async_gate = asyncio.Event()


@task
def echo(text: str) -> str:
    return text


@task
async def aecho(text: str) -> str:
    return text


@task
def nothing() -> None:
    return None


@task
def noop() -> None:
    """The bench's no-op job."""


@task
def photo(caption: str) -> Reply:
    return Reply(photo=b"\x89PNG fake", text=caption)


@task
def document(name: str) -> Reply:
    return Reply(document=b"some bytes", text=name)


class Keyboard:
    """A keyboard object (as aiogram's and PTB's are) that does not pickle: it holds a lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def to_dict(self) -> dict[str, Any]:
        return {"inline_keyboard": [[{"text": "ok", "callback_data": "ok"}]]}


@task
def unpicklable() -> Reply:
    return Reply(text="made it", reply_markup=Keyboard())


@task
def wrong_type() -> Any:
    return 42


@task(retries=2, backoff=0.05, failure_message="gave up")
def flaky(failures: int, text: str, ctx: JobContext) -> str:
    """Fails its first ``failures`` tries."""
    if ctx.attempt <= failures:
        raise ValueError(f"try {ctx.attempt} fails")
    return f"{text} on try {ctx.attempt}"


@task(retries=1, backoff=0.0, failure_message=None)
def silent_failure() -> str:
    raise RuntimeError("nobody is told")


@task(timeout=0.3, failure_message="too slow")
async def slow_async(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "done"


@task(timeout=0.3, failure_message="too slow")
def slow_sync(seconds: float) -> str:
    gate.wait(seconds)
    return "done"


@task(timeout=0.3, failure_message="too slow")
async def stubborn() -> str:
    """Ignores every cancellation for 1.5 s (the worker waits 1 s), then sets stubborn_done."""
    loop = asyncio.get_running_loop()
    end = loop.time() + 1.5
    while loop.time() < end:
        try:
            await asyncio.sleep(end - loop.time())
        except asyncio.CancelledError:
            pass
    stubborn_done.set()
    return "never"


@task
async def held(text: str) -> str:
    """Waits for the test's async_gate."""
    global held_now
    started.set()
    held_now += 1
    if held_now >= want:
        enough.set()
    assert async_gate is not None
    try:
        await async_gate.wait()
    finally:
        held_now -= 1
    return text


@task
async def progressing(steps: int, ctx: JobContext) -> str:
    for i in range(steps):
        await ctx.progress(f"{(i + 1) * 100 // steps}%")
    return "all done"


@task
def progressing_sync(ctx: JobContext) -> str:
    ctx.progress_sync("half")
    ctx.send_sync("a note")
    return "finished"


@task
async def chatty(ctx: JobContext) -> None:
    await ctx.send("one")
    await ctx.send(Reply(document=b"data", text="two"))


@task
def marked(seconds: float, text: str, ctx: JobContext) -> str:
    """For process tests: shows progress ``running in PID`` (the worker process's), then
    ``still running in PID`` (an edit: the status message is recorded by then), sleeps,
    returns ``text``."""
    ctx.progress_sync(f"running in {os.getpid()}")
    ctx.progress_sync(f"still running in {os.getpid()}")
    time.sleep(seconds)
    return text


@task(retries=2, backoff=0.05, failure_message="it failed")
def chaos(seconds: float, fail_tries: int, text: str, ctx: JobContext) -> str:
    """The bench's and the property's job: sleeps, fails its first ``fail_tries`` tries."""
    time.sleep(seconds)
    if ctx.attempt <= fail_tries:
        raise ValueError(f"try {ctx.attempt} fails")
    return text
