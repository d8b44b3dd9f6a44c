"""FakeTelegram's own speed: ``sendMessage`` requests per second on one core, over keep-alive.

The server (FakeTelegram with 1,000 registered chats) runs in one process pinned to core 0; a raw
keep-alive load client runs in another, pinned to core 1, each connection sending its next
request as soon as the answer to the last one is in. After a warm-up, the client counts answers
for ``--seconds`` and reads the server's CPU time (user + system) from ``/proc`` at both ends of
that window. Two figures come out:

- **per server CPU-second**: requests / server CPU time, what one fully busy core serves (the
  target is ≥ 20,000/s);
- **wall**: requests / elapsed time, what this client got (bounded by the client when the
  server core is not saturated, as with one connection).

    .venv/bin/python bench/fake_speed.py                       # the full matrix, ~2 minutes
    .venv/bin/python bench/fake_speed.py --seconds 1 --connections 32 --loop asyncio

Writes ``fake_speed.md`` and ``fake_speed.png`` into ``--out`` (default bench/results).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import multiprocessing as mp
import os
import platform
import re
import sys
import time
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "results"
RECORD = {"all": True, "ring": 10_000, "off": False}
CHATS = 1000
WARMUP = 1.0
TARGET = 20_000
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def _pin(core: int) -> None:
    if {0, 1} <= os.sched_getaffinity(0):
        os.sched_setaffinity(0, {core})


def _run(main: Any, loop: str) -> Any:
    if loop == "uvloop":
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)


def _serve(loop: str, record: str, ready: Any) -> None:
    _pin(0)
    from tgrunner.testing import FakeTelegram

    async def main() -> None:
        async with FakeTelegram(record=RECORD[record]) as tg:
            for i in range(CHATS):
                tg.state.register_chat({"id": 1000 + i, "type": "private", "first_name": f"U{i}"})
            ready.put((tg.port, tg.token))
            await asyncio.Event().wait()

    _run(main(), loop)


class _Connection(asyncio.Protocol):
    """One keep-alive connection: send, read the whole answer, send the next."""

    def __init__(self, requests: list[bytes], counter: list[int], errors: list[bytes]) -> None:
        self.requests = itertools.cycle(requests)
        self.counter = counter
        self.errors = errors
        self.buffer = b""
        self.running = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.transport.write(next(self.requests))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = self.buffer[:end]
            at = head.find(b"Content-Length: ")
            if at < 0:
                found = re.search(rb"content-length:\s*(\d+)", head.lower())
                size = int(found.group(1)) if found else 0
            else:
                size = int(head[at + 16 :].split(b"\r\n", 1)[0])
            if len(self.buffer) < end + 4 + size:
                return
            if not head.startswith(b"HTTP/1.1 200"):
                self.errors.append(self.buffer[: end + 4 + size][:300])
            self.buffer = self.buffer[end + 4 + size :]
            self.counter[0] += 1
            if self.running:
                self.transport.write(next(self.requests))


def _load(
    port: int, token: str, server_pid: int, connections: int, seconds: float, out: Any
) -> None:
    _pin(1)
    requests = []
    for i in range(CHATS):
        body = f'{{"chat_id":{1000 + i},"text":"reply number {i}"}}'.encode()
        requests.append(
            b"POST /bot%s/sendMessage HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (token.encode(), len(body), body)
        )

    async def main() -> dict[str, float]:
        running = asyncio.get_running_loop()
        counter, errors, conns = [0], [], []
        for c in range(connections):
            mine = requests[c::connections] or requests
            _, proto = await running.create_connection(
                lambda m=mine: _Connection(m, counter, errors), "127.0.0.1", port
            )
            conns.append(proto)
        # The load runs on its own; these sleeps only mark the measuring window.
        await asyncio.sleep(WARMUP)
        n0, cpu0, t0 = counter[0], _cpu_seconds(server_pid), time.perf_counter()
        await asyncio.sleep(seconds)
        n1, cpu1, t1 = counter[0], _cpu_seconds(server_pid), time.perf_counter()
        for proto in conns:
            proto.running = False
            proto.transport.close()
        if errors:
            raise RuntimeError(f"{len(errors)} non-200 answers, e.g. {errors[0]!r}")
        return {"requests": n1 - n0, "wall": t1 - t0, "server_cpu": cpu1 - cpu0}

    # The client is not what is measured: give it the fastest loop there is.
    try:
        import uvloop
    except ImportError:
        out.put(asyncio.run(main()))
    else:
        out.put(uvloop.run(main()))


def measure(loop: str, record: str, connections: int, seconds: float) -> dict[str, Any]:
    """Run one configuration in fresh server and client processes; return its figures."""
    ctx = mp.get_context("spawn")
    ready, out = ctx.Queue(), ctx.Queue()
    server = ctx.Process(target=_serve, args=(loop, record, ready), daemon=True)
    server.start()
    try:
        port, token = ready.get(timeout=60)
        client = ctx.Process(
            target=_load, args=(port, token, server.pid, connections, seconds, out)
        )
        client.start()
        figures = out.get(timeout=seconds + WARMUP + 60)
        client.join()
    finally:
        server.terminate()
        server.join(10)
    cpu = max(figures["server_cpu"], 1e-9)
    return {
        "loop": loop,
        "record": record,
        "connections": connections,
        "wall_rps": figures["requests"] / figures["wall"],
        "cpu_rps": figures["requests"] / cpu,
        "server_cpu_share": figures["server_cpu"] / figures["wall"],
    }


def _machine() -> str:
    cpu = "unknown"
    try:
        found = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = found.group(1).strip() if found else cpu
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}; {cpu}, nproc {os.cpu_count()}; Python "
        f"{platform.python_version()}; load average at start {load}"
    )


def write_markdown(path: Path, results: list[dict[str, Any]], machine: str, cmd: str) -> None:
    best = max(r["cpu_rps"] for r in results)
    lines = [
        "# FakeTelegram speed: sendMessage over keep-alive connections",
        "",
        f"- **machine**: {machine}",
        "- **setup**: server pinned to core 0, raw load client pinned to core 1, "
        f"{CHATS:,} chats, {WARMUP:g} s warm-up",
        f"- **command**: `{cmd}`",
        f"- **best**: {best:,.0f} requests per server CPU-second "
        f"({'meets' if best >= TARGET else 'misses'} the {TARGET:,}/s target)",
        "",
        "*per server CPU-second* = requests / the server process's CPU time: what one fully "
        "busy core serves. *wall* = requests / elapsed time. *server CPU* is the share of one "
        "core the server used (below 100 %, the client or the connection count was the limit). "
        "*record*: `all` keeps every request (what tests and `python -m bench` use), `ring` the "
        "last 10,000, `off` none.",
        "",
        "| event loop | record | connections | per server CPU-second | wall req/s | server CPU |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['loop']} | {r['record']} | {r['connections']} | {r['cpu_rps']:,.0f} "
            f"| {r['wall_rps']:,.0f} | {r['server_cpu_share']:.0%} |"
        )
    path.write_text("\n".join(lines) + "\n")


def write_png(path: Path, results: list[dict[str, Any]], machine: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    configs = list(dict.fromkeys((r["loop"], r["record"]) for r in results))
    conns = sorted({r["connections"] for r in results})
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8), sharey=False)
    width = 0.8 / len(configs)
    for ax, key, title in (
        (axes[0], "cpu_rps", "sendMessage per server CPU-second"),
        (axes[1], "wall_rps", "sendMessage per wall second"),
    ):
        for k, (loop, record) in enumerate(configs):
            by_conns = {
                r["connections"]: r[key]
                for r in results
                if (r["loop"], r["record"]) == (loop, record)
            }
            values = [by_conns.get(c, 0) for c in conns]
            xs = [i + (k - (len(configs) - 1) / 2) * width for i in range(len(conns))]
            ax.bar(xs, values, width, label=f"{loop}, record={record}")
        ax.axhline(TARGET, color="red", linestyle="--", linewidth=1, label=f"target {TARGET:,}/s")
        ax.set_xticks(range(len(conns)), [f"{c} conn." for c in conns])
        ax.set_title(title, fontsize=10)
        ax.yaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("{x:,.0f}"))
    axes[0].legend(fontsize=7)
    fig.suptitle(f"FakeTelegram, one core — {machine}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=5.0, help="measured seconds per row (5)")
    p.add_argument("--connections", type=int, nargs="+", default=[1, 16, 64])
    p.add_argument("--record", nargs="+", choices=list(RECORD), default=list(RECORD))
    p.add_argument(
        "--loop", nargs="+", choices=["asyncio", "uvloop"], default=["asyncio", "uvloop"]
    )
    p.add_argument("--out", type=Path, default=OUT, help="output folder (bench/results)")
    args = p.parse_args(argv)
    machine = _machine()
    print(machine, flush=True)
    results = []
    for loop, record, conns in itertools.product(args.loop, args.record, args.connections):
        r = measure(loop, record, conns, args.seconds)
        print(
            f"{loop:>7} record={record:<4} {conns:>3} connections: "
            f"{r['cpu_rps']:>8,.0f} per server CPU-s  {r['wall_rps']:>8,.0f} wall req/s  "
            f"server CPU {r['server_cpu_share']:.0%}",
            flush=True,
        )
        results.append(r)
    args.out.mkdir(parents=True, exist_ok=True)
    cmd = "python bench/fake_speed.py " + " ".join(argv if argv is not None else sys.argv[1:])
    write_markdown(args.out / "fake_speed.md", results, machine, cmd.strip())
    write_png(args.out / "fake_speed.png", results, machine)
    print(f"wrote {args.out / 'fake_speed.md'} and fake_speed.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
