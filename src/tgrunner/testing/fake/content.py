"""Media and other content for FakeTelegram's messages: files (uploaded, by id or by URL),
photos, documents and the other media kinds, media groups, locations, venues, contacts, polls
and dice."""

from __future__ import annotations

import mimetypes
from typing import Any

from tgrunner.testing.fake.base import ApiError, Upload
from tgrunner.testing.fake.sending import _DICE_FACES, Handler, Sending
from tgrunner.testing.fake.world import BotState, StoredFile

__all__ = ["ContentSending"]


class ContentSending(Sending):
    """The send methods for media and other content, on :class:`~.sending.Sending`."""

    def stored(self, kind: str, value: Any, raw: dict[str, Any]) -> tuple[StoredFile, str | None]:
        """Resolve an InputFile-or-String parameter to a stored file and its upload name."""
        state = self.state
        if isinstance(value, str) and value.startswith("attach://"):
            value = raw.get(value[9:])
            if not isinstance(value, Upload):
                raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        if isinstance(value, Upload):
            ext = mimetypes.guess_extension(value.content_type or "") or ""
            if "." in value.filename:
                ext = value.filename[value.filename.rfind(".") :]
            if kind == "photo":
                # Telegram re-encodes photos as JPEG.
                ext = ".jpg"
            return state.add_file(kind, data=value.data, ext=ext), value.filename
        if not isinstance(value, str) or not value.strip() or any(c.isspace() for c in value):
            raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        if value.startswith(("http://", "https://")):
            name = value.rstrip("/").rsplit("/", 1)[-1] or None
            return state.add_file(kind, size=self.rng.randint(10_000, 900_000)), name
        known = state.files.get(value)
        if known is not None:
            return known, None
        # A file id the fake never issued (e.g. from a simulated user's message): accept it.
        stored = state.add_file(kind, size=self.rng.randint(10_000, 900_000))
        del state.files[stored.file_id]
        stored.file_id = value
        state.files[value] = stored
        return stored, None

    def _media_object(
        self, kind: str, stored: StoredFile, name: str | None, params: dict[str, Any]
    ) -> Any:
        base = {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id}
        size = {"file_size": stored.file_size}
        if kind == "photo":
            sizes = []
            for width, height in ((90, 68), (320, 240)):
                small = self.state.add_file("photo", size=max(1, stored.file_size * width // 6400))
                sizes.append(
                    {
                        "file_id": small.file_id,
                        "file_unique_id": small.file_unique_id,
                        "file_size": small.file_size,
                        "width": width,
                        "height": height,
                    }
                )
            sizes.append({**base, **size, "width": 800, "height": 600})
            return sizes
        mime = (mimetypes.guess_type(name)[0] if name else None) or {
            "video": "video/mp4",
            "audio": "audio/mpeg",
            "voice": "audio/ogg",
            "animation": "video/mp4",
            "document": "application/octet-stream",
        }.get(kind)
        duration = int(params.get("duration") or 1 + stored.file_size % 60)
        width = int(params.get("width") or 640)
        height = int(params.get("height") or 360)
        named = {"file_name": name} if name else {}
        if kind == "document":
            return {**base, **named, "mime_type": mime, **size}
        if kind in ("video", "animation"):
            shape = {"width": width, "height": height, "duration": duration}
            return {**base, **shape, **named, "mime_type": mime, **size}
        if kind == "audio":
            extra = {k: params[k] for k in ("performer", "title") if params.get(k)}
            return {**base, "duration": duration, **extra, **named, "mime_type": mime, **size}
        if kind == "voice":
            return {**base, "duration": duration, "mime_type": mime, **size}
        if kind == "video_note":
            return {
                **base,
                "length": int(params.get("length") or 240),
                "duration": duration,
                **size,
            }
        sticker = {
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
        }
        if params.get("emoji"):
            sticker["emoji"] = params["emoji"]
        return {**base, **sticker, **size}

    def _send_media(self, kind: str) -> Handler:
        def send(bot: BotState, params: dict[str, Any], raw: dict[str, Any]) -> Any:
            value = params.get(kind)
            if value is None:
                raise ApiError(400, f"Bad Request: there is no {kind} in the request")
            stored, name = self.stored(kind, value, raw)
            msg = self._begin(bot, params)
            msg[kind] = self._media_object(kind, stored, name, params)
            if kind == "animation":
                # Telegram sends animations with a ``document`` twin for old clients.
                msg["document"] = {
                    k: v for k, v in msg[kind].items() if k not in ("width", "height", "duration")
                }
            if kind not in ("sticker", "video_note"):
                self._caption(msg, params)
            return self._finish(msg, params)

        send.__name__ = f"send_{kind}"
        return send

    def send_media_group(self, bot: BotState, params: dict[str, Any], raw: dict[str, Any]) -> Any:
        media = params.get("media") or []
        if not isinstance(media, list) or not 2 <= len(media) <= 10:
            raise ApiError(400, "Bad Request: media group must contain 2-10 items")
        chat = self.state.resolve_chat(params["chat_id"])
        group_id = str(self.rng.randrange(10**17, 10**18))
        messages = []
        for item in media:
            kind = item.get("type") if isinstance(item, dict) else None
            if kind not in ("photo", "video", "audio", "document"):
                raise ApiError(400, "Bad Request: can't parse InputMedia: unsupported media type")
            stored, name = self.stored(kind, item.get("media"), raw)
            msg = self._begin(bot, params, chat)
            msg["media_group_id"] = group_id
            msg[kind] = self._media_object(kind, stored, name, item)
            self._caption(msg, item)
            messages.append(self._finish(msg, {}))
        return messages

    def send_location(self, bot: BotState, params: dict[str, Any], raw: dict[str, Any]) -> Any:
        msg = self._begin(bot, params)
        msg["location"] = self._location(params)
        return self._finish(msg, params)

    @staticmethod
    def _location(params: dict[str, Any]) -> dict[str, Any]:
        loc = {"latitude": float(params["latitude"]), "longitude": float(params["longitude"])}
        for key in ("horizontal_accuracy", "live_period", "heading", "proximity_alert_radius"):
            if params.get(key) is not None:
                loc[key] = params[key]
        return loc

    def send_venue(self, bot: BotState, params: dict[str, Any], raw: dict[str, Any]) -> Any:
        msg = self._begin(bot, params)
        location = self._location(params)
        venue = {"location": location, "title": params["title"], "address": params["address"]}
        for key in ("foursquare_id", "foursquare_type", "google_place_id", "google_place_type"):
            if params.get(key):
                venue[key] = params[key]
        msg["venue"] = venue
        msg["location"] = location
        return self._finish(msg, params)

    def send_contact(self, bot: BotState, params: dict[str, Any], raw: dict[str, Any]) -> Any:
        msg = self._begin(bot, params)
        contact = {"phone_number": params["phone_number"], "first_name": params["first_name"]}
        for key in ("last_name", "vcard"):
            if params.get(key):
                contact[key] = params[key]
        msg["contact"] = contact
        return self._finish(msg, params)

    def send_poll(self, bot: BotState, params: dict[str, Any], raw: dict[str, Any]) -> Any:
        options = params.get("options") or []
        if len(options) < 2:
            raise ApiError(400, "Bad Request: poll must have at least 2 option")
        if len(options) > 12:
            raise ApiError(400, "Bad Request: poll can't have more than 12 options")
        msg = self._begin(bot, params)
        poll: dict[str, Any] = {
            "id": str(self.rng.randrange(10**18, 10**19)),
            "question": params["question"],
            "options": [
                {
                    "persistent_id": str(i),
                    "text": o.get("text", "") if isinstance(o, dict) else str(o),
                    "voter_count": 0,
                }
                for i, o in enumerate(options)
            ],
            "total_voter_count": 0,
            "is_closed": bool(params.get("is_closed")),
            "is_anonymous": params.get("is_anonymous", True) is not False,
            "type": params.get("type") or "regular",
            "allows_multiple_answers": bool(params.get("allows_multiple_answers")),
            "allows_revoting": bool(params.get("allows_revoting")),
            "members_only": bool(params.get("members_only")),
        }
        for key in ("question_entities", "correct_option_ids", "explanation", "open_period"):
            if params.get(key) is not None:
                poll[key] = params[key]
        msg["poll"] = poll
        return self._finish(msg, params)

    def send_dice(self, bot: BotState, params: dict[str, Any], raw: dict[str, Any]) -> Any:
        emoji = params.get("emoji") or "🎲"
        faces = _DICE_FACES.get(emoji)
        if faces is None:
            raise ApiError(400, "Bad Request: invalid dice emoji specified")
        msg = self._begin(bot, params)
        msg["dice"] = {"emoji": emoji, "value": self.rng.randint(1, faces)}
        return self._finish(msg, params)
