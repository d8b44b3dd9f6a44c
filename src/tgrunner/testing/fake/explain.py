"""Why a wait on FakeTelegram timed out: the messages of the ``wait_*`` helpers' TimeoutError.

Each function builds one message from what the fake saw, on the fake's own loop (where the
state may be read), at the moment the wait gave up::

    waited 5.0 s for 2 replies in chat 1001 (Alice): 1 arrived: ['hi']

A message names what was awaited, what did arrive instead, and a hint when the record shows a
likely cause (calls into that chat that failed, updates the bot never fetched, no polling).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tgrunner.testing.fake.record import RecordedRequest
    from tgrunner.testing.fake.world import State

__all__ = ["call_timeout", "chat_label", "polling_timeout", "predicate_timeout", "replies_timeout"]

# What a listing shows at most: items, and characters per text.
_MAX_ITEMS = 10
_MAX_TEXT = 80
# Message fields that say what kind of message it is, when it has no text (in this order).
_KINDS = (
    "photo",
    "video",
    "animation",
    "audio",
    "voice",
    "video_note",
    "document",
    "sticker",
    "paid_media",
    "location",
    "venue",
    "contact",
    "poll",
    "dice",
    "game",
    "invoice",
    "checklist",
)


def _seconds(timeout: float) -> str:
    return f"{float(timeout)} s"


def _short(text: str, limit: int = _MAX_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _listing(items: Sequence[str]) -> str:
    """``['a', 'b']``, at most ``_MAX_ITEMS`` of them (the last ones), then how many more."""
    shown = list(items[-_MAX_ITEMS:])
    more = len(items) - len(shown)
    body = ", ".join(shown)
    return f"[… {more} earlier, {body}]" if more else f"[{body}]"


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def chat_label(state: State, chat_id: int) -> str:
    """``chat 1001 (Alice)``: the id, and the title or the person's name when the fake knows the
    chat; ``chat 1001`` otherwise."""
    chat = state.chats.get(chat_id) or {}
    name = chat.get("title")
    if not name:
        name = " ".join(str(chat[k]) for k in ("first_name", "last_name") if chat.get(k))
    if not name and chat.get("username"):
        name = "@" + str(chat["username"])
    return f"chat {chat_id} ({name})" if name else f"chat {chat_id}"


def message_summary(message: dict[str, Any]) -> str:
    """A message as a listing shows it: ``'its text'``, ``photo 'its caption'``, ``sticker``."""
    text = message.get("text")
    if isinstance(text, str):
        return repr(_short(text))
    kind = next((k for k in _KINDS if k in message), "message")
    caption = message.get("caption")
    return f"{kind} {_short(caption)!r}" if isinstance(caption, str) else kind


def _failure(record: RecordedRequest) -> str:
    response = record.response
    description = response.get("description") if isinstance(response, dict) else None
    return f"{record.method} {record.status} {_short(str(description or ''), 160)!r}"


def _chat_of(record: RecordedRequest) -> int | None:
    chat_id = record.params.get("chat_id")
    try:
        return int(chat_id) if chat_id is not None else None
    except (TypeError, ValueError):
        return None


def _calls_seen(records: Iterable[RecordedRequest], keeps_record: bool) -> str:
    """``recorded calls: getMe ×1, getUpdates ×3`` (by first arrival), or why there are none."""
    if not keeps_record:
        return "FakeTelegram keeps no record (record=False), so no calls can be shown"
    counts = Counter(r.method for r in records)
    if not counts:
        return "no call at all reached this FakeTelegram"
    return "recorded calls: " + ", ".join(f"{m} ×{n}" for m, n in counts.items())


def _not_fetched(state: State) -> str:
    pending = state.primary.pending_update_count
    if not pending:
        return ""
    return (
        f"; {_plural(pending, 'update')} not yet fetched by the bot (is it running, against "
        "this FakeTelegram's api_url and token?)"
    )


def replies_timeout(
    state: State,
    records: Iterable[RecordedRequest],
    chat_id: int,
    count: int,
    timeout: float,
) -> str:
    """The message of ``wait_for_replies``: the chat, the count awaited, what arrived, and the
    bot's failed calls into that chat."""
    sent = state.bot_messages.get(chat_id, ())
    arrived = f"{len(sent)} arrived" if sent else "none arrived"
    if sent:
        arrived += ": " + _listing([message_summary(m) for m in sent])
    failed = [_failure(r) for r in records if not r.ok and _chat_of(r) == chat_id]
    hint = f"; failed calls in this chat: {_listing(failed)}" if failed else ""
    return (
        f"waited {_seconds(timeout)} for {_plural(count, 'reply', 'replies')} in "
        f"{chat_label(state, chat_id)}: {arrived}{hint}{_not_fetched(state)}"
    )


def _name_of(fn: Callable[..., Any]) -> str:
    """A callable as a message names it: its name, and for a lambda or a local function where
    it was defined."""
    name = getattr(fn, "__qualname__", None) or repr(fn)
    code = getattr(fn, "__code__", None)
    if code is not None and "<" in name:
        name = f"{fn.__name__} ({Path(code.co_filename).name}:{code.co_firstlineno})"
    return name


def call_timeout(
    records: Sequence[RecordedRequest],
    method: str,
    where: Callable[[RecordedRequest], bool] | None,
    timeout: float,
    keeps_record: bool,
) -> str:
    """The message of ``wait_for_call``: the method, the ``where`` filter, the calls of that
    method that it refused, and every call that did arrive."""
    wanted = f"a {method} call" + (f" matching where={_name_of(where)}" if where else "")
    same = [r for r in records if r.method == method]
    refused = ""
    if same:
        params = [_short(repr(r.params)) for r in same]
        refused = f"; {_plural(len(same), method + ' call')} did not match: {_listing(params)}"
    return (
        f"waited {_seconds(timeout)} for {wanted}: none arrived{refused}; "
        f"{_calls_seen(records, keeps_record)}"
    )


def polling_timeout(
    state: State,
    records: Sequence[RecordedRequest],
    api_url: str,
    timeout: float,
    keeps_record: bool,
) -> str:
    """The message of ``wait_until_polling``: no ``getUpdates`` came, what came instead, and
    why a poll may have failed."""
    hints = []
    failed = [_failure(r) for r in records if r.method == "getUpdates" and not r.ok]
    if failed:
        hints.append(f"getUpdates failed: {_listing(failed)}")
    if state.primary.webhook is not None:
        hints.append("a webhook is set, so Telegram would not answer getUpdates either")
    hint = "".join(f"; {h}" for h in hints)
    return (
        f"waited {_seconds(timeout)} for the bot to poll: no getUpdates call is waiting or "
        f"arrived at {api_url} since the wait began; {_calls_seen(records, keeps_record)}{hint}"
    )


def predicate_timeout(predicate: Callable[[], bool], timeout: float) -> str:
    """The message of ``wait_for``: which condition stayed false."""
    return f"waited {_seconds(timeout)} for {_name_of(predicate)} to become true; it stayed false"
