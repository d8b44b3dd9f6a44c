"""Checks over FakeTelegram's record shared by the tests: order, loss and duplicates."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any


@dataclass
class Tally:
    lost: int
    duplicates: int
    violations: int


def tally(sent: dict[int, list[str]], requests: list[Any]) -> Tally:
    """Compare each chat's sent texts with the bot's ``sendMessage`` texts, in arrival order.

    A violation is a first reply that comes after a reply to a later message of its chat.
    """
    got: dict[int, list[str]] = {}
    for r in requests:
        if r.method == "sendMessage":
            got.setdefault(int(r.params["chat_id"]), []).append(str(r.params["text"]))
    lost = duplicates = violations = 0
    for chat, texts in sent.items():
        replies = got.get(chat, [])
        counts = Counter(replies)
        lost += sum(1 for t in texts if counts[t] == 0)
        duplicates += sum(c - 1 for c in counts.values() if c > 1)
        rank = {t: i for i, t in enumerate(texts)}
        seen: set[str] = set()
        high = -1
        for t in replies:
            if t in seen:
                continue
            seen.add(t)
            if rank[t] < high:
                violations += 1
            high = max(high, rank[t])
    return Tally(lost, duplicates, violations)


def missing(sent: dict[int, list[str]], requests: list[Any]) -> list[tuple[int, str]]:
    """The (chat, text) of each sent message that got no sendMessage reply."""
    got = {(int(r.params["chat_id"]), str(r.params["text"])) for r in requests
           if r.method == "sendMessage"}  # fmt: skip
    return [(chat, t) for chat, texts in sent.items() for t in texts if (chat, t) not in got]


def frontier(sent: dict[int, list[str]], requests: list[Any]) -> dict[int, int]:
    """Per chat, how many of its first sent messages all got a reply."""
    got = {(int(r.params["chat_id"]), str(r.params["text"])) for r in requests
           if r.method == "sendMessage"}  # fmt: skip
    done: dict[int, int] = {}
    for chat, texts in sent.items():
        n = 0
        while n < len(texts) and (chat, texts[n]) in got:
            n += 1
        done[chat] = n
    return done


def send_round(users: list[Any], sent: dict[int, list[str]], start: int) -> int:
    """Each user sends the next number once; record it under its chat. Returns the last."""
    n = start
    for user in users:
        n += 1
        user.send(str(n))
        sent.setdefault(user.chat.id, []).append(str(n))
    return n


def send_load(tg: Any, chats: int, per_chat: int) -> dict[int, list[str]]:
    """``chats`` users send ``per_chat`` numbered messages each, interleaved; returns what
    each chat sent, in order."""
    users = [tg.user(f"L{i}") for i in range(chats)]
    sent: dict[int, list[str]] = {}
    n = 0
    for _round in range(per_chat):
        n = send_round(users, sent, n)
    return sent


def replied(tg: Any) -> int:
    """How many sendMessage calls FakeTelegram answered with success."""
    return sum(1 for r in tg.requests if r.method == "sendMessage" and r.ok)
