"""Buttons and inline mode: a simulated user presses the bot's callback buttons, types inline
queries and picks their results."""

from __future__ import annotations

from tgrunner.testing.fake.users.messages import JSON, current, message_of
from tgrunner.testing.fake.users.person import Person

__all__ = ["ButtonNotFound", "CallbackActions"]


class ButtonNotFound(LookupError):
    """:meth:`SimUser.press` found no callback button with the given data or text."""


class CallbackActions(Person):
    """Callback queries, inline queries and chosen inline results."""

    def press(self, message: JSON, data: str | None = None, *, text: str | None = None) -> JSON:
        """Press a callback button of the bot's message (``callback_query``), found by its
        ``callback_data`` (``data``) or its label (``text``), in the message's current version.

        Raises :class:`ButtonNotFound`, listing the buttons, when there is no such button.
        """
        if (data is None) == (text is None):
            raise TypeError("press() takes the button's data or its text=, not both")
        world = self.population.world
        msg = current(world, message_of(message))
        if (msg.get("from") or {}).get("id") != world.bot_user["id"]:
            raise ValueError("only buttons of the bot's own messages send callback queries")
        rows = (msg.get("reply_markup") or {}).get("inline_keyboard") or []
        buttons = [b for row in rows for b in row]
        for button in buttons:
            if (data is not None and button.get("callback_data") == data) or (
                text is not None and button.get("text") == text and "callback_data" in button
            ):
                return self._callback(msg, button["callback_data"])
        wanted = f"data {data!r}" if data is not None else f"text {text!r}"
        have = [(b.get("text"), b.get("callback_data")) for b in buttons if "callback_data" in b]
        raise ButtonNotFound(
            f"no callback button with {wanted} in message {msg['message_id']} of chat "
            f"{msg['chat']['id']}; its callback buttons (text, data) are {have}"
        )

    def press_inline(self, inline_message_id: str, data: str) -> JSON:
        """Press a callback button of a message sent in inline mode (``callback_query`` with
        ``inline_message_id`` and no ``message``)."""
        return self._callback({"inline_message_id": inline_message_id}, data)

    def _callback(self, where: JSON, data: str) -> JSON:
        pop = self.population
        query: JSON = {"id": pop._query_id(), "from": self.as_dict()}
        if "inline_message_id" in where:
            query["inline_message_id"] = where["inline_message_id"]
            query["chat_instance"] = pop._chat_instance(where["inline_message_id"])
        else:
            query["message"] = where
            query["chat_instance"] = pop._chat_instance(int(where["chat"]["id"]))
        query["data"] = data
        return pop.push("callback_query", query)

    def inline_query(
        self, query: str, *, offset: str = "", chat_type: str | None = "sender"
    ) -> JSON:
        """Type ``@bot query`` in a chat (``inline_query``). ``chat_type`` is where: "sender"
        (default, the chat with the bot), "private", "group", "supergroup", "channel", or None
        (unknown)."""
        payload: JSON = {
            "id": self.population._query_id(),
            "from": self.as_dict(),
            "query": query,
            "offset": offset,
        }
        if chat_type is not None:
            payload["chat_type"] = chat_type
        return self.population.push("inline_query", payload)

    def choose_inline_result(
        self, result_id: str, query: str, *, has_keyboard: bool = False
    ) -> JSON:
        """Pick a result of an inline query (``chosen_inline_result``). With ``has_keyboard``
        (default False) the sent message has an ``inline_message_id``, for :meth:`press_inline`."""
        payload: JSON = {"result_id": result_id, "from": self.as_dict(), "query": query}
        if has_keyboard:
            payload["inline_message_id"] = self.population._token(18)
        return self.population.push("chosen_inline_result", payload)
