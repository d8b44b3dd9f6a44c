"""The Bot API methods FakeTelegram gives real behaviour to; every other method is generated.

:class:`Methods` maps a canonical method name to a handler ``(bot, params, raw) -> result``.
``params`` are the validated parameters (:func:`~tgrunner.testing.fake.validate.coerce_params`),
``raw`` the request's parameters as sent (uploads referenced by ``attach://name`` live there).
Handlers raise :class:`~tgrunner.testing.fake.base.ApiError` with Telegram's descriptions.
``getUpdates`` is the one asynchronous handler (long polling); methods without a handler answer
``Generator.result(...)``, a valid value of their declared result type.

Message methods (send, copy, forward, edit, delete) live in :mod:`.messages`. The rest here:
``getMe``, ``logOut``/``close``, ``getUpdates``, the webhook methods, the answers to queries,
``sendChatAction``, chats and members, and ``getFile``. Webhook URLs may be plain ``http://`` on
any port, because test servers are.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from tgrunner.testing.botapi import Method
from tgrunner.testing.fake.base import ApiError, Upload
from tgrunner.testing.fake.generate import Generator
from tgrunner.testing.fake.messages import Handler, Messages
from tgrunner.testing.fake.validate import coerce_params
from tgrunner.testing.fake.world import BotState, State, WebhookConfig

__all__ = ["AsyncHandler", "Handler", "Methods"]

AsyncHandler = Callable[[BotState, dict[str, Any], dict[str, Any]], Awaitable[Any]]

_QUERY_INVALID = "Bad Request: query is too old and response timeout expired or query ID is invalid"
_TERMINATED = (
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is "
    "running"
)
_WEBHOOK_ACTIVE = (
    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete "
    "the webhook first"
)
_SECRET_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
LONG_POLL_MAX_TIMEOUT = 50
"""The reference server clamps ``getUpdates``' ``timeout`` to this many seconds."""


class Methods:
    """Behaviour of the core methods over a :class:`State`.

    ``on_webhook`` (default: nothing) is called with the bot after ``setWebhook`` or
    ``deleteWebhook`` changed its webhook, so the server can start or stop delivery.
    """

    def __init__(
        self,
        state: State,
        generator: Generator,
        *,
        on_webhook: Callable[[BotState], None] | None = None,
    ) -> None:
        self.state = state
        self.gen = generator
        self.rng = state.rng
        self.on_webhook = on_webhook or (lambda bot: None)
        self.messages = Messages(state)
        s = self
        self.sync: dict[str, Handler] = {
            "getMe": s.get_me,
            "logOut": s.log_out,
            "close": s.close,
            "setWebhook": s.set_webhook,
            "deleteWebhook": s.delete_webhook,
            "getWebhookInfo": s.get_webhook_info,
            "answerCallbackQuery": s.answer_query("callback_query_id"),
            "answerInlineQuery": s.answer_query("inline_query_id"),
            "answerPreCheckoutQuery": s.answer_query("pre_checkout_query_id"),
            "answerShippingQuery": s.answer_query("shipping_query_id"),
            "sendChatAction": s.send_chat_action,
            "getChat": s.get_chat,
            "getChatMember": s.get_chat_member,
            "getChatMemberCount": s.get_chat_member_count,
            "getChatAdministrators": s.get_chat_administrators,
            "getFile": s.get_file,
        }
        self.sync.update(self.messages.handlers)
        self.asynchronous: dict[str, AsyncHandler] = {"getUpdates": self.get_updates}

    # -- dispatch --------------------------------------------------------------------------

    def prepare(self, method: Method, raw: dict[str, Any]) -> dict[str, Any]:
        """Validate ``raw`` for ``method``; the legacy ``reply_to_message_id`` becomes
        ``reply_parameters`` first, as the reference server still accepts it."""
        legacy = raw.get("reply_to_message_id")
        if legacy not in (None, "") and "reply_parameters" not in raw:
            raw = dict(raw)
            reply: dict[str, Any] = {"message_id": legacy}
            if raw.get("allow_sending_without_reply") not in (None, "", "false", False):
                reply["allow_sending_without_reply"] = True
            raw["reply_parameters"] = reply
        return coerce_params(method, raw)

    def call(self, bot: BotState, name: str, params: dict[str, Any], raw: dict[str, Any]) -> Any:
        """Run a synchronous handler or generate the result; None: use :attr:`asynchronous`."""
        handler = self.sync.get(name)
        if handler is not None:
            return handler(bot, params, raw)
        if name in self.asynchronous:
            return None
        return self.gen.result(name, params)

    # -- bot and updates -------------------------------------------------------------------

    def get_me(self, bot: BotState, params: dict[str, Any], raw: dict[str, Any]) -> Any:
        return bot.user

    def log_out(self, bot: BotState, params: dict[str, Any], raw: dict[str, Any]) -> Any:
        return True

    def close(self, bot: BotState, params: dict[str, Any], raw: dict[str, Any]) -> Any:
        return True

    async def get_updates(self, bot: BotState, params: dict[str, Any], raw: dict[str, Any]) -> Any:
        """Offset confirmation, limit 1–100, long polling that returns at the first update.

        A new long poll fails the one already waiting with 409 (the older request loses), as
        the reference server does; a short poll does not disturb a waiting one. Not copied from
        the reference server: its anti-spam rules (a repeated short poll within 3 s becomes a
        3 s long poll, and repeated 409s are delayed by 3 s), which would only slow tests.
        """
        if bot.webhook is not None:
            raise ApiError(409, _WEBHOOK_ACTIVE)
        offset = int(params.get("offset") or 0)
        limit = params.get("limit")
        limit = 100 if limit is None else min(max(int(limit), 1), 100)
        timeout = min(max(float(params.get("timeout") or 0), 0.0), LONG_POLL_MAX_TIMEOUT)
        state = self.state
        state.set_allowed_updates(bot, params.get("allowed_updates"))
        updates = state.take_updates(bot, offset, limit)
        if updates or timeout <= 0:
            return updates
        older = bot.long_poll
        if older is not None and not older.done():
            older.set_exception(ApiError(409, _TERMINATED))
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        bot.long_poll = waiter
        # Tests wait for "the poll is waiting" before they push an update.
        state.changed()
        try:
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation.
            async with asyncio.timeout(timeout):
                await waiter
        except TimeoutError:
            return []
        finally:
            if bot.long_poll is waiter:
                bot.long_poll = None
        # A negative offset was applied above; what is queued now is all new.
        return state.take_updates(bot, max(offset, 0), limit)

    def set_webhook(self, bot: BotState, params: dict[str, Any], raw: dict[str, Any]) -> Any:
        url = str(params.get("url") or "")
        if not url:
            return self.delete_webhook(bot, params, raw)
        if not url.startswith(("http://", "https://")) or len(url) < 10:
            raise ApiError(
                400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"
            )
        secret = params.get("secret_token")
        if secret is not None and secret != "":
            secret = str(secret)
            if len(secret) > 256 or not set(secret) <= _SECRET_CHARS:
                raise ApiError(400, "Bad Request: secret token contains unallowed characters")
        else:
            secret = None
        max_connections = min(max(int(params.get("max_connections") or 40), 1), 100)
        self.state.set_allowed_updates(bot, params.get("allowed_updates"))
        if params.get("drop_pending_updates"):
            self.state.drop_pending(bot)
        poll = bot.long_poll
        if poll is not None and not poll.done():
            poll.set_exception(ApiError(409, "Conflict: terminated by setWebhook request"))
        bot.long_poll = None
        bot.webhook = WebhookConfig(
            url=url,
            secret_token=secret,
            max_connections=max_connections,
            ip_address=params.get("ip_address") or None,
            has_custom_certificate=isinstance(params.get("certificate"), Upload),
        )
        bot.last_error_date = None
        bot.last_error_message = None
        self.on_webhook(bot)
        return True

    def delete_webhook(self, bot: BotState, params: dict[str, Any], raw: dict[str, Any]) -> Any:
        had = bot.webhook is not None
        bot.webhook = None
        if had:
            # Delivery stops first, so its undelivered updates are back in ``pending``.
            self.on_webhook(bot)
        if params.get("drop_pending_updates"):
            self.state.drop_pending(bot)
        bot.last_error_date = None
        bot.last_error_message = None
        return True

    def get_webhook_info(self, bot: BotState, params: dict[str, Any], raw: dict[str, Any]) -> Any:
        return self.state.webhook_info(bot)

    # -- answers and chat actions ----------------------------------------------------------

    def answer_query(self, id_param: str) -> Handler:
        """A handler that records the answer to a callback, inline, shipping or pre-checkout
        query. Unknown ids get Telegram's "query is too old" error; a second answer is recorded
        too (Telegram would refuse it, tests are better served seeing it)."""

        def answer(bot: BotState, params: dict[str, Any], raw: dict[str, Any]) -> Any:
            query_id = str(params.get(id_param) or "")
            record = self.state.known_query(query_id)
            if record is None:
                raise ApiError(400, _QUERY_INVALID)
            answers = record.setdefault("answers", [])
            answers.append(params)
            record["answer"] = params
            self.state.changed()
            return True

        answer.__name__ = f"answer_{id_param}"
        return answer

    def send_chat_action(self, bot: BotState, params: dict[str, Any], raw: dict[str, Any]) -> Any:
        self.state.resolve_chat(params["chat_id"])
        return True

    # -- chats and members -----------------------------------------------------------------

    def get_chat(self, bot: BotState, params: dict[str, Any], raw: dict[str, Any]) -> Any:
        chat = self.state.resolve_chat(params["chat_id"])
        fields = self.state.spec.types["ChatFullInfo"].fields
        info = {f.name: chat[f.name] for f in fields if f.name in chat}
        info.setdefault("accent_color_id", chat["id"] % 7)
        info.setdefault("max_reaction_count", 11)
        info.setdefault(
            "accepted_gift_types",
            {
                "unlimited_gifts": True,
                "limited_gifts": True,
                "unique_gifts": True,
                "premium_subscription": True,
                "gifts_from_channels": True,
            },
        )
        if chat.get("type") in ("group", "supergroup") and "permissions" not in info:
            info["permissions"] = {"can_send_messages": True}
        return info

    def _bot_member(self, bot: BotState, chat: dict[str, Any]) -> dict[str, Any]:
        if chat.get("type") != "channel":
            return {"status": "member", "user": bot.user}
        return {
            "status": "administrator",
            "user": bot.user,
            "can_be_edited": False,
            "is_anonymous": False,
            "can_manage_chat": True,
            "can_delete_messages": True,
            "can_manage_video_chats": False,
            "can_restrict_members": False,
            "can_promote_members": False,
            "can_change_info": False,
            "can_invite_users": True,
            "can_post_stories": False,
            "can_edit_stories": False,
            "can_delete_stories": False,
            "can_post_messages": True,
            "can_edit_messages": True,
        }

    def _members(self, bot: BotState, chat: dict[str, Any]) -> dict[int, dict[str, Any]]:
        """Known membership: recorded members, else whoever wrote in the chat, plus the bot."""
        state = self.state
        chat_id = chat["id"]
        members = dict(state.members.get(chat_id, {}))
        if chat.get("type") == "private":
            user = state.users.get(chat_id) or {"id": chat_id, "is_bot": False, "first_name": ""}
            members.setdefault(chat_id, {"status": "member", "user": user})
        elif not members:
            for message in state.messages.get(chat_id, {}).values():
                sender = message.get("from")
                if sender is not None:
                    members.setdefault(sender["id"], {"status": "member", "user": sender})
        members.setdefault(bot.user["id"], self._bot_member(bot, chat))
        return members

    def get_chat_member(self, bot: BotState, params: dict[str, Any], raw: dict[str, Any]) -> Any:
        chat = self.state.resolve_chat(params["chat_id"])
        user_id = int(params["user_id"])
        member = self._members(bot, chat).get(user_id)
        if member is not None:
            return member
        user = self.state.users.get(user_id)
        if user is None:
            raise ApiError(400, "Bad Request: user not found")
        return {"status": "left", "user": user}

    def get_chat_member_count(
        self, bot: BotState, params: dict[str, Any], raw: dict[str, Any]
    ) -> Any:
        chat = self.state.resolve_chat(params["chat_id"])
        members = self._members(bot, chat)
        return sum(1 for m in members.values() if m.get("status") not in ("left", "kicked"))

    def get_chat_administrators(
        self, bot: BotState, params: dict[str, Any], raw: dict[str, Any]
    ) -> Any:
        chat = self.state.resolve_chat(params["chat_id"])
        if chat.get("type") == "private":
            raise ApiError(400, "Bad Request: there are no administrators in the private chat")
        members = self._members(bot, chat).values()
        return [m for m in members if m.get("status") in ("creator", "administrator")]

    # -- files -----------------------------------------------------------------------------

    def get_file(self, bot: BotState, params: dict[str, Any], raw: dict[str, Any]) -> Any:
        file_id = str(params.get("file_id") or "")
        if not file_id.strip():
            raise ApiError(400, "Bad Request: file_id is empty")
        stored = self.state.files.get(file_id)
        if stored is None:
            stored, _ = self.messages.stored("document", file_id, raw)
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": stored.file_size,
            "file_path": stored.file_path,
        }
