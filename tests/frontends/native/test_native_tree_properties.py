"""Property: however routes, fallbacks and includes are interleaved, the router tree answers an
update as a plain recursive walk over it would, in registration order."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from tgrunner.client.bot import Bot
from tgrunner.frontends.native import Context, Router

ROUTERS = 4
TEXTS = ("a", "b", "c")


@dataclass
class Model:
    """The reference: each router's items in order, and its fallback."""

    items: list[list[tuple[str, object]]] = field(
        default_factory=lambda: [[] for _ in range(ROUTERS)]
    )
    fallbacks: list[str | None] = field(default_factory=lambda: [None] * ROUTERS)

    def answer(self, index: int, text: str) -> str | None:
        for what, value in self.items[index]:
            if what == "route" and isinstance(value, tuple) and value[0] in (text, None):
                return str(value[1])
            if what == "include" and isinstance(value, int):
                found = self.answer(value, text)
                if found is not None:
                    return found
        return self.fallbacks[index]


# (op, router, argument): a route for a text (None: any), a fallback, or an include of a router
# with a higher index (so no cycle).
ops = st.lists(
    st.one_of(
        st.tuples(st.just("route"), st.integers(0, ROUTERS - 1), st.sampled_from((*TEXTS, None))),
        st.tuples(st.just("fallback"), st.integers(0, ROUTERS - 1), st.none()),
        st.tuples(st.just("include"), st.integers(0, ROUTERS - 2), st.integers(1, ROUTERS - 1)),
    ),
    max_size=25,
)


def update(text: str) -> dict:
    chat = {"id": 1, "type": "private"}
    return {"update_id": 1, "message": {"message_id": 1, "chat": chat, "text": text, "date": 0}}


@settings(max_examples=200, deadline=None)
@given(ops=ops, checkpoints=st.sets(st.integers(0, 25)))
def test_the_tree_answers_like_a_recursive_walk(
    ops: list[tuple[str, int, object]], checkpoints: set[int]
) -> None:
    routers = [Router() for _ in range(ROUTERS)]
    model = Model()
    got: list[str] = []

    def record(name: str):  # type: ignore[no-untyped-def]
        async def handler(ctx: Context) -> None:
            got.append(name)

        return handler

    async def check(bot: Bot) -> None:
        for text in TEXTS:
            got.clear()
            await routers[0](update(text), bot)
            assert got == ([] if (want := model.answer(0, text)) is None else [want])

    async def main() -> None:
        async with Bot("1:x", api_url="http://127.0.0.1:9") as bot:
            for step, (op, index, arg) in enumerate(ops):
                name = f"{op}{step}"
                if op == "route":
                    text = arg if isinstance(arg, str) else None
                    routers[index].message(text=text)(record(name))
                    model.items[index].append(("route", (text, name)))
                elif op == "fallback":
                    routers[index].fallback(record(name))
                    model.fallbacks[index] = name
                elif isinstance(arg, int) and arg > index:
                    routers[index].include(routers[arg])
                    model.items[index].append(("include", arg))
                if step in checkpoints:
                    await check(bot)
            await check(bot)

    asyncio.run(main())
