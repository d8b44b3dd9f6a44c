"""What the RQ bench rows share: their worker processes, their queues on the bench's Redis
database, and the clean-up of those queues' keys (never the whole database)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from pathlib import Path

import redis

from bench.harness import LOGS, REPO
from tgrunner.jobs.backends._rq_common import QueueKeys

__all__ = [
    "DB",
    "REDIS",
    "RQ",
    "Worker",
    "cleanup",
    "fresh_name",
    "redis_up",
    "sync_redis",
    "tgrunner_worker",
]

DB = 13
REDIS = f"redis://127.0.0.1:6379/{DB}"
RQ = str(Path(sys.executable).with_name("rq"))
SRC = str(Path(__file__).resolve().parents[1] / "src")


def sync_redis() -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=6379, db=DB)


def redis_up() -> bool:
    try:
        return bool(sync_redis().ping())
    except redis.RedisError:
        return False


def fresh_name(prefix: str) -> str:
    return f"bench-{prefix}-{uuid.uuid4().hex[:8]}"


def cleanup(name: str) -> None:
    """Delete queue ``name``'s keys and its jobs' (found in its list and registries), and the
    RQ workers that served it."""
    keys = QueueKeys(name)
    r = sync_redis()
    ids: set[bytes] = set(r.lrange(keys.queue, 0, -1))
    for key in (*keys.all[1:8], keys.deferred):
        ids.update(entry.split(b":")[0] for entry in r.zrange(key, 0, -1))
    doomed = [*keys.all[:8], keys.deferred, f"{keys.queue}:intermediate"]
    doomed += [f"rq:clean_registries:{name}", f"rq:workers:{name}"]
    for raw in r.smembers(f"rq:workers:{name}"):
        doomed.append(raw.decode())
        r.srem("rq:workers", raw)
    for job_id in ids:
        found = job_id.decode()
        runs = f"rq:executions:{found}"
        doomed += [keys.job + found, keys.results + found, runs]
        doomed += [f"rq:execution:{found}:{e.decode()}" for e in r.zrange(runs, 0, -1)]
    for i in range(0, len(doomed), 1000):
        r.delete(*doomed[i : i + 1000])
    r.srem(keys.all[8], keys.queue)
    r.close()


def _env(extra: dict[str, str]) -> dict[str, str]:
    path = os.pathsep.join(p for p in (SRC, str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1", **extra}


class Worker:
    """A worker process; its output goes to ``log`` as it comes, and :meth:`wait_ready`
    returns once a line holds ``ready``."""

    def __init__(self, proc: asyncio.subprocess.Process, log: Path, ready: str) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.log = log
        self._ready_text = ready
        self.ready = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(
        cls, argv: list[str], *, name: str, ready: str, env: dict[str, str] | None = None
    ) -> Worker:
        LOGS.mkdir(parents=True, exist_ok=True)
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=REPO,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,  # rq logs to stdout, tgrunner to stderr
            stderr=asyncio.subprocess.STDOUT,
            env=_env(env or {}),
        )
        return cls(proc, LOGS / f"{name}.log", ready)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        with self.log.open("ab") as out:
            async for line in self.proc.stdout:
                out.write(line)
                if self._ready_text.encode() in line:
                    self.ready.set()

    async def wait_ready(self, timeout: float = 60.0) -> None:
        waiting = asyncio.create_task(self.ready.wait())
        done, _ = await asyncio.wait([waiting, self._reader], timeout=timeout,
                                     return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
        if waiting not in done:
            waiting.cancel()
            raise RuntimeError(f"worker {self.pid} did not get ready; see {self.log}")

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)

    async def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, SIGKILL after ``timeout``; the exit code."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.kill()
            code = await self.proc.wait()
        await self._reader
        return code


def tgrunner_worker(url: str, token: str, api_url: str, concurrency: int) -> list[str]:
    """``python -m tgrunner.jobs.worker`` on the queue at ``url``."""
    return [
        sys.executable, "-m", "tgrunner.jobs.worker", "--jobs", url,
        "--concurrency", str(concurrency), "--path", str(REPO),
        "--token", token, "--api-url", api_url, "--log-level", "INFO",
    ]  # fmt: skip
