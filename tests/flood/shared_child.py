"""A process using shared buckets, for the process tests (``python shared_child.py MODE ...``).

- ``reserve URL PREFIX KEY PER_SECOND BURST N``: prints ``ready``, waits for a line on stdin,
  makes N reservations as fast as it can, then prints each one's ``[lo, hi]`` (it leaves
  within them, on the backend's clock as this host reads it) as JSON.
- ``pause URL PREFIX KEY SECONDS``: pauses the key, prints ``[before, after]`` of the call.
- ``loop URL PREFIX KEY``: reserves for ever at a rate that never waits, printing ``running``
  after the first reservation, and every 2,000 the count and the time.

Redis's clock is read as the wall clock (``time.time``), a file's as ``time.monotonic``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from tgrunner.flood import Rate
from tgrunner.flood.shared import open_shared


async def main(mode: str, url: str, prefix: str, key: str, *rest: str) -> None:
    now = time.monotonic if url.startswith("file:") else time.time
    buckets = open_shared(url, prefix=None if url.startswith("file:") else prefix)
    try:
        if mode == "reserve":
            rate, n = Rate(float(rest[0]), int(rest[1])), int(rest[2])
            print("ready", flush=True)
            sys.stdin.readline()
            spans = []
            for _ in range(n):
                before = now()
                wait = await buckets.reserve(key, rate)
                spans.append((before + wait - 2e-6, now() + wait + 2e-6))
            print(json.dumps(spans), flush=True)
        elif mode == "pause":
            before = now()
            await buckets.pause(key, float(rest[0]))
            print(json.dumps([before, now()]), flush=True)
        elif mode == "loop":
            fast, count = Rate(1e6), 0
            while True:
                await buckets.reserve(key, fast)
                count += 1
                if count == 1:
                    print("running", flush=True)
                elif count % 2000 == 0:
                    print(count, now(), flush=True)
    finally:
        await buckets.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
