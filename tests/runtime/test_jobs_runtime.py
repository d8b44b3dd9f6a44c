"""The runtime's side of jobs, in this process: the queue a bot's process opens is opened at
its first use (a bot that queues nothing leaves no file), the job workers' command line holds
no token (their environment does), and handler worker processes are told where the queue is."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

from tgrunner.jobs import JobRequest, current_queue
from tgrunner.runtime.jobs import BotJobs, LazyQueue
from tgrunner.settings import IntakeOptions, JobOptions, Settings

pytestmark = pytest.mark.timeout(30)

TOKEN = "123456:AAsecret"


async def test_the_embedded_queue_is_opened_at_its_first_use(tmp_path: Path) -> None:
    queue = LazyQueue(None, data_dir=tmp_path, token=TOKEN)
    path = tmp_path / "123456" / "jobs.sqlite"
    assert queue.url == f"sqlite:///{path}"
    await queue.close()  # closing what was never opened
    assert not (tmp_path / "123456").exists()
    job = await queue.enqueue(JobRequest("bot:render", pickle.dumps(((), {}))))
    assert path.is_file()
    info = await queue.info(job)
    assert info is not None and info.state == "queued"
    assert (await queue.counts())["queued"] == 1
    await queue.check()
    await queue.close()
    await queue.close()


def _jobs(tmp_path: Path, **options: object) -> BotJobs:
    settings = Settings(intake=IntakeOptions(data_dir=str(tmp_path)),
                        jobs=JobOptions(**options))  # type: ignore[arg-type]  # fmt: skip
    jobs = BotJobs(settings)
    jobs.token, jobs.api_url = TOKEN, "http://127.0.0.1:9"
    return jobs


async def test_the_bot_process_queue_is_made_current_and_closed_at_stop(tmp_path: Path) -> None:
    jobs = _jobs(tmp_path)
    start = jobs.startup(None)
    await start()
    assert current_queue() is jobs.queue
    assert await jobs.ready() == {"jobs": True}
    await jobs.shutdown(None)()
    with pytest.raises(Exception, match="no job queue is open in this process"):
        current_queue()


def test_the_job_workers_get_the_token_in_their_environment_not_their_arguments(
    tmp_path: Path,
) -> None:
    jobs = _jobs(tmp_path, url="redis://127.0.0.1:6379/3", workers=2)
    argv = jobs.command(tmp_path)
    assert not any(TOKEN in a or "AAsecret" in a for a in argv), argv
    assert argv[1:3] == ["-m", "tgrunner.jobs.process"]
    assert argv[argv.index("--jobs") + 1] == "redis://127.0.0.1:6379/3"
    assert argv[argv.index("--path") + 1] == os.getcwd()
    env = jobs.environment()
    assert env["TGRUNNER_TOKEN"] == TOKEN and env["TGRUNNER_API_URL"] == "http://127.0.0.1:9"


def test_handler_workers_are_told_where_the_queue_is(tmp_path: Path) -> None:
    assert _jobs(tmp_path).for_workers() == {"url": None, "data_dir": str(tmp_path.resolve())}
    jobs = _jobs(tmp_path, url="redis://127.0.0.1:6379/3")
    assert jobs.for_workers()["url"] == "redis://127.0.0.1:6379/3"
