"""Reactions and poll votes: how a simulated user answers messages without writing one."""

from __future__ import annotations

from collections.abc import Iterable

from tgrunner.testing.fake.users.messages import JSON, message_of
from tgrunner.testing.fake.users.person import Person

__all__ = ["ReactionActions"]


class ReactionActions(Person):
    """Emoji reactions (``message_reaction``) and votes in polls (``poll_answer``, ``poll``)."""

    def react(self, message: JSON, *emoji: str) -> JSON:
        """Set this user's reactions on ``message`` to ``emoji`` (none: remove them), as a
        ``message_reaction`` with the old and new lists."""
        msg = message_of(message)
        chat = msg["chat"]
        if chat["type"] == "channel":
            raise ValueError("reactions in channels are anonymous: use channel.reaction_count()")
        key = (int(chat["id"]), int(msg["message_id"]))
        new = [{"type": "emoji", "emoji": e} for e in emoji]
        old = self._reactions.get(key, [])
        self._reactions[key] = new
        payload = {
            "chat": chat,
            "message_id": msg["message_id"],
            "user": self.as_dict(),
            "date": self.population.world.now(),
            "old_reaction": old,
            "new_reaction": new,
        }
        return self._chat_of(msg)._deliver("message_reaction", payload, admin_only=True)

    def answer_poll(self, poll: JSON | str, option_ids: Iterable[int]) -> JSON:
        """Vote (or, with no options, retract the vote) in a poll: a message with a poll, a
        Poll, or a known poll id. Counts are kept for :meth:`Population.poll_update`.

        A non-anonymous poll produces ``poll_answer`` (returned). An anonymous poll sends no
        answer, only its new state as a ``poll`` update (returned).
        """
        record = self.population._poll(poll)
        p = record.poll
        if p["is_closed"]:
            raise ValueError(f"poll {p['id']} is closed")
        chosen = sorted(set(option_ids))
        if any(not 0 <= i < len(p["options"]) for i in chosen):
            raise ValueError(f"poll {p['id']} has options 0..{len(p['options']) - 1}, not {chosen}")
        if len(chosen) > 1 and not p["allows_multiple_answers"]:
            raise ValueError(f"poll {p['id']} allows one answer, not {chosen}")
        votes = record.votes
        for i in votes.pop(self.id, []):
            p["options"][i]["voter_count"] -= 1
        for i in chosen:
            p["options"][i]["voter_count"] += 1
        if chosen:
            votes[self.id] = chosen
        p["total_voter_count"] = len(votes)
        if p["is_anonymous"]:
            return self.population.poll_update(p["id"])
        answer = {
            "poll_id": p["id"],
            "user": self.as_dict(),
            "option_ids": chosen,
            "option_persistent_ids": [p["options"][i]["persistent_id"] for i in chosen],
        }
        return self.population.push("poll_answer", answer)
