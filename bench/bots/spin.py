"""1 ms of CPU, the same in every runtime of the workers benchmark.

:func:`spin` burns the calling thread's own CPU clock (``time.thread_time``), not a number of
loop iterations: a Python loop and a Node loop differ many times in speed, and an iteration
count would also change with the machine. ``spin.cjs`` does the same under Node.
"""

from __future__ import annotations

import time

SPIN_SECONDS = 0.001
"""What each handler of the CPU-bound echo burns: 1 ms of its thread's CPU time."""


def spin(seconds: float = SPIN_SECONDS) -> None:
    """Busy-loop until this thread has used ``seconds`` of CPU time (default 1 ms)."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass
