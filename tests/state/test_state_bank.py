"""The bank property on every backend: random transfers, run concurrently, each awaiting
between its read and its write, keep the total exactly, never overdraw, and never hand a
conflict to the caller. The same transfers written naively (read, await, write with plain
get/set) lose or create money in the same harness: the check can fail.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from state_backends import BACKENDS, fresh_url

from tgrunner.state import Store, open_store

START = 100
EXAMPLES = {"memory": 40, "sqlite": 15, "postgresql": 8, "mysql": 8, "redis": 10}

Pause = Callable[[], Awaitable[object]]


@dataclass(frozen=True)
class Transfer:
    src: int
    dst: int
    amount: int
    pause: int  # 0: none, 1-3: that many event loop turns, 4: a 1 ms sleep


@st.composite
def bank_case(draw: st.DrawFn) -> tuple[int, list[Transfer]]:
    accounts = draw(st.integers(2, 6))
    pair = st.lists(st.integers(0, accounts - 1), min_size=2, max_size=2, unique=True)
    transfer = st.builds(
        lambda p, amount, pause: Transfer(p[0], p[1], amount, pause),
        pair,
        st.integers(1, 150),
        st.integers(0, 4),
    )
    return accounts, draw(st.lists(transfer, min_size=1, max_size=30))


async def _pause(turns: int) -> None:
    if turns == 4:
        await asyncio.sleep(0.001)
    for _ in range(turns):
        await asyncio.sleep(0)


async def atomic_transfer(store: Store, src: str, dst: str, amount: int, pause: Pause) -> bool:
    """The right way: both accounts in one transaction."""
    async with store.transaction(src, dst) as tx:
        have = await tx.get(src, 0)
        await pause()  # a Bot API call, say
        if have < amount:
            return False
        tx.set(src, have - amount)
        tx.set(dst, await tx.get(dst, 0) + amount)
        return True


async def naive_transfer(store: Store, src: str, dst: str, amount: int, pause: Pause) -> bool:
    """The race: read both, await, write both, with nothing held in between."""
    have, other = await store.get(src, 0), await store.get(dst, 0)
    await pause()
    if have < amount:
        return False
    await store.set(src, have - amount)
    await store.set(dst, other + amount)
    return True


async def run_bank(
    store: Store,
    prefix: str,
    accounts: int,
    transfers: list[tuple[int, int, int, Pause]],
    transfer: Callable[[Store, str, str, int, Pause], Awaitable[bool]] = atomic_transfer,
) -> list[int]:
    """Open ``accounts`` with START each, run ``transfers`` all at once, give the balances."""
    names = [f"{prefix}acct:{i}" for i in range(accounts)]
    for name in names:
        await store.set(name, START)
    await asyncio.gather(
        *(transfer(store, names[s], names[d], amount, pause) for s, d, amount, pause in transfers)
    )
    return [await store.get(name) for name in names]


@pytest.mark.timeout(240)
@pytest.mark.parametrize("backend", BACKENDS)
def test_concurrent_transfers_keep_the_total(backend: str, tmp_path: Path) -> None:
    examples = itertools.count()

    async def scenario(accounts: int, transfers: list[Transfer]) -> None:
        async with fresh_url(backend, tmp_path) as url, open_store(url) as store:
            jobs = [
                (t.src, t.dst, t.amount, lambda t=t: _pause(t.pause))  # type: ignore[misc]
                for t in transfers
            ]
            balances = await run_bank(store, f"e{next(examples)}:", accounts, jobs)
        assert sum(balances) == accounts * START, balances
        assert min(balances) >= 0, balances

    @settings(
        max_examples=EXAMPLES[backend],
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(bank_case())
    def check(case: tuple[int, list[Transfer]]) -> None:
        asyncio.run(scenario(*case))

    check()


def _ring() -> tuple[int, list[tuple[int, int, int]]]:
    # A→B 10, B→C 20, C→A 30: whichever order the naive writes land in, each account ends
    # with one transfer's idea of it, and no mix of those sums to 300.
    return 3, [(0, 1, 10), (1, 2, 20), (2, 0, 30)]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("backend", BACKENDS)
async def test_naive_transfers_lose_or_make_money(backend: str, tmp_path: Path) -> None:
    accounts, ring = _ring()
    async with fresh_url(backend, tmp_path) as url, open_store(url) as store:
        # Every naive transfer has read before any writes: the race, every time.
        barrier = asyncio.Barrier(len(ring))
        jobs = [(s, d, a, barrier.wait) for s, d, a in ring]
        naive = await run_bank(store, "naive:", accounts, jobs, naive_transfer)
        assert sum(naive) != accounts * START, naive

        # The same ring in transactions, each awaiting between read and write.
        atomic = await run_bank(
            store, "atomic:", accounts, [(s, d, a, lambda: _pause(4)) for s, d, a in ring]
        )
        assert atomic == [120, 90, 90]
