"""The terminal chat's state and behaviour: who is talking where, the keyboards shown, and what
the bot did, turned into lines.

A :class:`ChatSession` lives on FakeTelegram's event loop. :meth:`ChatSession.execute` runs one
:class:`~.commands.Command` as a simulated user; :meth:`ChatSession.drain` turns the calls the
bot made since the last drain (FakeTelegram's record of requests) into lines: messages it sent,
edited or deleted, answers to button presses, and failed calls. Every line goes to ``emit``.

Lines look like this (``[Friends]`` marks a chat other than the current one)::

    bot: Pick one
      [1] Yes  [2] No  <Docs: https://example.org>
    bot (edited): You chose Yes
    bot (answer): Noted
    [Friends] bot: [photo] a cat
    bot (deleted): Pick one
    bot (failed): sendMessage: Bad Request: chat not found
    -- now talking as Bob, in a private chat with the bot
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from tgrunner.testing.chat.commands import Command, CommandError, help_lines
from tgrunner.testing.chat.render import Keyboard, block, describe, keyboard_of
from tgrunner.testing.fake.server import FakeTelegram, RecordedRequest
from tgrunner.testing.fake.users import SimChat, SimUser

__all__ = ["ChatSession"]

log = logging.getLogger(__name__)

JSON = dict[str, Any]

# Bot messages remembered for showing what a deletion removed; the oldest are forgotten.
_REMEMBERED = 5000
_EDITS = frozenset(
    {
        "editMessageText",
        "editMessageCaption",
        "editMessageMedia",
        "editMessageReplyMarkup",
        "editMessageLiveLocation",
        "stopMessageLiveLocation",
    }
)
_MULTI = ("copyMessages", "forwardMessages")  # answer with MessageId lists


@dataclass(slots=True)
class _Shown:
    """The keyboard ``/press`` uses in a chat: the latest one the bot showed there; ``message``
    is the message an inline keyboard belongs to (None for a reply keyboard)."""

    keyboard: Keyboard
    message: JSON | None


def _visible(method: str) -> bool:
    """Calls that change what the user sees (``sendChatAction`` does not, for long)."""
    if method == "sendChatAction":
        return False
    return method.startswith(("send", "copy", "forward", "edit", "delete")) or method in (
        "answerCallbackQuery",
        "stopMessageLiveLocation",
    )


class ChatSession:
    """One person at a terminal, talking to the bot through simulated users.

    - ``tg``: the FakeTelegram the bot runs against (the session reads its ``requests``, so
      it must record them: ``record=True``, the default).
    - ``emit(lines)``: where the session's lines go.
    - ``user_name``: the first user's first name (default ``"You"``).

    ``pending`` holds the ids of updates sent to the bot and not yet handled; the runtime's
    executor reports each handled one with :meth:`handled`.
    """

    def __init__(
        self, tg: FakeTelegram, emit: Callable[[list[str]], None], *, user_name: str = "You"
    ) -> None:
        self.tg = tg
        self.emit = emit
        self.pending: set[int] = set()
        self._users: dict[str, SimUser] = {}
        self._groups: dict[str, SimChat] = {}
        self.user = self._user(user_name)
        self.chat: SimChat = self.user.chat
        self._cursor = len(tg.requests)
        self._shown: dict[int, _Shown] = {}
        self._last_sent: dict[tuple[int, int], JSON] = {}
        self._remembered: dict[tuple[int, int], str] = {}

    # -- who and where ---------------------------------------------------------------------

    @property
    def prompt(self) -> str:
        """``You> `` in a private chat, ``You @ Friends> `` in a group."""
        if self.chat.type == "private":
            return f"{self.user.first_name}> "
        return f"{self.user.first_name} @ {self.chat.title}> "

    def _user(self, name: str) -> SimUser:
        user = self._users.get(name.lower())
        if user is None:
            username = "".join(c for c in name.lower() if c.isalnum() or c == "_")[:32]
            user = self.tg.user(name, username=username or None)
            self._users[name.lower()] = user
        return user

    def _where(self) -> str:
        if self.chat.type == "private":
            return "in a private chat with the bot"
        return f"in the group {self.chat.title}"

    # -- commands --------------------------------------------------------------------------

    def execute(self, command: Command) -> None:
        """Run one command (``quit`` is the terminal's business, not the session's)."""
        try:
            self._execute(command)
        except (CommandError, LookupError, ValueError) as exc:
            self.note(str(exc))

    def note(self, text: str) -> None:
        """Emit one line of the chat's own (not the bot's)."""
        self.emit([f"-- {text}"])

    def _execute(self, command: Command) -> None:
        name, text = command.name, command.text
        user, chat = self.user, self.chat
        if name == "say":
            self._sent(user.send(text, chat=chat))
        elif name == "press":
            self._press(command.number)
        elif name == "as":
            self.user = self._user(text)
            if self.chat.type == "private":
                self.chat = self.user.chat
            self.note(f"now talking as {self.user.first_name}, {self._where()}")
        elif name == "group":
            group = self._groups.get(text.lower())
            if group is None:
                group = self._groups[text.lower()] = self.tg.group(text, members=[user])
            self.chat = group
            self.note(f"now talking as {user.first_name}, {self._where()}")
        elif name == "private":
            self.chat = user.chat
            self.note(f"now talking as {user.first_name}, {self._where()}")
        elif name == "photo":
            self._sent(user.send_photo(text or None, chat=chat))
        elif name == "document":
            self._sent(user.send_document(text or "report.pdf", chat=chat))
        elif name == "sticker":
            self._sent(user.send_sticker(text or "👍", chat=chat))
        elif name == "location":
            self._sent(user.send_location(*(command.point or ()), chat=chat))
        elif name == "edit":
            self._edit(text)
        elif name == "?":
            self.emit(["Chat commands:", *help_lines()])
        else:
            raise CommandError(f"/{name} is not a chat command")

    def _sent(self, message: JSON) -> None:
        self._last_sent[(self.user.id, self.chat.id)] = message
        self._track()

    def _track(self) -> None:
        """Count the update just pushed as pending, or say why the bot will not get it."""
        update = self.tg.population.last_update
        pending = self.tg.state.primary.pending
        if any(u is update for u in reversed(pending)):
            self.pending.add(update["update_id"])
            return
        kind = next(k for k in update if k != "update_id")
        self.note(f"the bot does not receive {kind} updates (its allowed_updates leave them out)")

    def _edit(self, text: str) -> None:
        last = self._last_sent.get((self.user.id, self.chat.id))
        if last is None:
            raise CommandError(f"nothing to edit: {self.user.first_name} sent nothing here yet")
        self._last_sent[(self.user.id, self.chat.id)] = self.user.edit(last, text)
        self._track()

    def _press(self, number: int) -> None:
        shown = self._shown.get(self.chat.id)
        if shown is None or not shown.keyboard.buttons:
            raise CommandError("no keyboard to press in this chat")
        buttons = shown.keyboard.buttons
        if number > len(buttons):
            raise CommandError(f"no button {number}: the latest keyboard has {len(buttons)}")
        button = buttons[number - 1]
        if shown.message is None:  # a reply keyboard: its button sends its text
            if shown.keyboard.one_time:
                del self._shown[self.chat.id]
            self._sent(self.user.send(button.value, chat=self.chat))
            return
        self.user.press(shown.message, button.value)
        self._track()

    # -- what the bot did ------------------------------------------------------------------

    def handled(self, update_id: int) -> None:
        """The runtime finished an update: it is no longer pending."""
        self.pending.discard(update_id)
        self.tg.state.changed()  # wakes whoever waits for the bot to settle

    def drain(self) -> None:
        """Emit the lines for every call the bot made since the last drain."""
        requests = self.tg.requests
        lines: list[str] = []
        while self._cursor < len(requests):
            record = requests[self._cursor]
            self._cursor += 1
            if not _visible(record.method):
                continue
            try:
                lines += self._lines_of(record)
            except Exception as exc:  # a shape this chat does not know must not end it
                log.debug("cannot show %s", record, exc_info=exc)
                lines.append(f"-- cannot show the bot's {record.method} call: {exc!r}")
        if lines:
            self.emit(lines)

    def _label(self, chat_id: int) -> str:
        if chat_id == self.chat.id:
            return ""
        chat = self.tg.state.chats.get(chat_id) or {}
        return f"[{chat.get('title') or chat.get('first_name') or chat_id}] "

    def _chat_id(self, params: JSON) -> int | None:
        try:
            return int(self.tg.state.resolve_chat(params["chat_id"])["id"])
        except Exception:  # no chat_id, or an unknown one: the call failed anyway
            return None

    def _lines_of(self, record: RecordedRequest) -> list[str]:
        method, params, result = record.method, record.params, record.response
        if not record.ok:
            description = result.get("description") if isinstance(result, dict) else result
            chat_id = self._chat_id(params)
            where = self._label(chat_id) if chat_id is not None else ""
            return [f"{where}bot (failed): {method}: {description}"]
        if method == "answerCallbackQuery":
            return self._answer(params)
        if method in ("deleteMessage", "deleteMessages"):
            chat_id = self._chat_id(params)
            ids = params.get("message_ids") or [params.get("message_id")]
            return [line for mid in ids for line in self._deleted(chat_id, mid)]
        if method in _EDITS:
            return self._edited(result) if isinstance(result, dict) else []
        messages: list[JSON] = []
        if method == "copyMessage" or method in _MULTI:
            chat_id = self._chat_id(params)
            for ref in result if isinstance(result, list) else [result]:
                found = self.tg.state.get_message(chat_id, ref["message_id"]) if chat_id else None
                messages += [found] if found is not None else []
        else:
            messages = result if isinstance(result, list) else [result]
        markup = params.get("reply_markup")
        if isinstance(markup, (str, bytes)):
            markup = orjson.loads(markup)
        lines: list[str] = []
        for message in messages:
            if isinstance(message, dict) and "chat" in message:
                lines += self._message(message, keyboard_of(markup), "bot: ")
        return lines

    def _remember(self, message: JSON, text: str) -> None:
        key = (int(message["chat"]["id"]), int(message["message_id"]))
        self._remembered.pop(key, None)
        self._remembered[key] = text
        if len(self._remembered) > _REMEMBERED:
            del self._remembered[next(iter(self._remembered))]

    def _message(self, message: JSON, keyboard: Keyboard | None, head: str) -> list[str]:
        chat_id = int(message["chat"]["id"])
        text = describe(message)
        self._remember(message, text)
        lines = block(self._label(chat_id) + head, text)
        if keyboard is None:
            return lines
        current = self._shown.get(chat_id)
        if keyboard.kind == "remove":
            if current is not None and current.message is None:
                del self._shown[chat_id]
            return [*lines, "  (keyboard removed)"]
        inline = keyboard.kind == "inline"
        self._shown[chat_id] = _Shown(keyboard, message if inline else None)
        rows = list(keyboard.lines)
        if not inline:
            return lines + block("  keyboard: ", "\n".join(rows))
        return lines + ["  " + row for row in rows]

    def _edited(self, message: JSON) -> list[str]:
        chat_id, mid = int(message["chat"]["id"]), int(message["message_id"])
        keyboard = keyboard_of(message.get("reply_markup"))
        if keyboard is None:
            self._forget_keyboard(chat_id, mid)  # the edit took it away, if it had one
        return self._message(message, keyboard, "bot (edited): ")

    def _deleted(self, chat_id: int | None, message_id: Any) -> list[str]:
        if chat_id is None or message_id is None:
            return []
        mid = int(message_id)
        self._forget_keyboard(chat_id, mid)
        text = self._remembered.pop((chat_id, mid), None)
        if text is None:
            return [f"{self._label(chat_id)}bot deleted message {mid}"]
        return block(f"{self._label(chat_id)}bot (deleted): ", text)

    def _forget_keyboard(self, chat_id: int, message_id: int) -> None:
        """The message's inline keyboard is gone: ``/press`` cannot use it any more."""
        shown = self._shown.get(chat_id)
        message = shown.message if shown is not None else None
        if message is not None and int(message["message_id"]) == message_id:
            del self._shown[chat_id]

    def _answer(self, params: JSON) -> list[str]:
        text = params.get("text")
        if params.get("url"):
            return [f"bot (answer): open {params['url']}"]
        if not text:
            return []
        return block("bot (alert): " if params.get("show_alert") else "bot (answer): ", text)
