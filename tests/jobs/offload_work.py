"""Functions the offload tests send to pool processes (importable there: this folder is on the
test run's ``sys.path``, which the pool processes are given)."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from typing import Any


def square(x: int) -> int:
    return x * x


def pid() -> int:
    return os.getpid()


def fail(message: str) -> None:
    raise ValueError(message)


def spin(ms: float) -> tuple[int, float, float]:
    """Burn ``ms`` of wall time on the CPU; (pid, start, end) in ``time.monotonic()``, which
    every process of the machine shares."""
    start = time.monotonic()
    end = start + ms / 1000
    while time.monotonic() < end:
        pass
    return os.getpid(), start, time.monotonic()


def exit_now(code: int) -> None:
    os._exit(code)


def segfault() -> None:
    os.kill(os.getpid(), signal.SIGSEGV)


def _tell(port: int) -> socket.socket:
    """Send this process's PID to the test listening on ``127.0.0.1:port``; the test sees
    this process die as the end of the connection."""
    conn = socket.create_connection(("127.0.0.1", port))
    conn.sendall(f"{os.getpid()}\n".encode())
    return conn


def hang(port: int) -> None:
    """Say so to the test (:func:`_tell`), then sleep for ever."""
    _conn = _tell(port)
    while True:
        time.sleep(3600)


def spin_forever(port: int) -> None:
    """Say so to the test, then run Python code for ever."""
    _conn = _tell(port)
    while True:
        pass


def hold_the_gil(port: int) -> int:
    """Say so to the test, then compute in C for hours, holding the GIL all the while (no
    other thread of this process runs)."""
    _conn = _tell(port)
    return sum(range(10**13))


def work(tag: int, kind: str, ms: float) -> int:
    """The hypothesis property's call: after ``ms``, return ``tag``, raise ``ValueError(tag)``
    or end the process."""
    time.sleep(ms / 1000)
    if kind == "raise":
        raise ValueError(tag)
    if kind == "exit":
        os._exit(7)
    return tag


class NeedsTwo(Exception):
    """An exception that pickles but cannot be unpickled (its __init__ wants two arguments)."""

    def __init__(self, a: Any, b: Any) -> None:
        super().__init__(f"{a}/{b}")


def raise_needs_two() -> None:
    raise NeedsTwo(1, 2)


class HoldsALock(Exception):
    """An exception that cannot be pickled."""

    def __init__(self) -> None:
        super().__init__("locked")
        self.lock = threading.Lock()


def raise_holds_a_lock() -> None:
    raise HoldsALock()


def raise_system_exit() -> None:
    raise SystemExit(4)


def raise_stop_iteration() -> None:
    raise StopIteration(5)


def return_a_lock() -> Any:
    return threading.Lock()


class Box:
    """A module-level class: its instances pickle, and its methods can be sent."""

    def __init__(self, value: int) -> None:
        self.value = value

    def double(self) -> int:
        return self.value * 2

    @staticmethod
    def triple(x: int) -> int:
        return x * 3


async def async_square(x: int) -> int:
    return x * x
