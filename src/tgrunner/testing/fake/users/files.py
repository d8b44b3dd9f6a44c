"""Files of simulated media: ``file_id`` and ``file_unique_id`` shaped like Telegram's, and the
sizes Telegram makes of a photo."""

from __future__ import annotations

import base64
import itertools
import random

from tgrunner.testing.fake.users.messages import JSON

__all__ = ["FileIds"]

# The first byte of a real file_id names the file's type; mimicking it makes ids look right
# ("AgAC..." for photos) to anyone who inspects them.
_FILE_TYPE = {
    "photo": 2,
    "voice": 3,
    "video": 4,
    "document": 5,
    "sticker": 8,
    "audio": 9,
    "animation": 10,
    "video_note": 13,
}


class FileIds:
    """Makes the files of one population: numbered in order of creation, random past that.

    Random parts come from ``rng`` (the population's), so a seed makes them repeatable.
    """

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._seq = itertools.count(1)

    def new(self, kind: str, size: int | None = None) -> JSON:
        """``file_id``, ``file_unique_id`` and ``file_size`` of a new file."""
        n = next(self._seq)
        raw = bytes((_FILE_TYPE[kind], 0, 2, 0)) + n.to_bytes(4, "big") + self._rng.randbytes(48)
        unique = bytes((_FILE_TYPE[kind],)) + n.to_bytes(4, "big") + self._rng.randbytes(7)
        return {
            "file_id": base64.urlsafe_b64encode(raw).decode().rstrip("="),
            "file_unique_id": base64.urlsafe_b64encode(unique).decode().rstrip("="),
            "file_size": size if size is not None else self._rng.randint(10_000, 2_000_000),
        }

    def photo(self, width: int, height: int) -> list[JSON]:
        """A photo's sizes, smallest first, as Telegram lists them."""
        sizes = []
        for side in (90, 320, 800, 1280):
            scale = min(1.0, side / max(width, height))
            w, h = max(1, round(width * scale)), max(1, round(height * scale))
            sizes.append(self.new("photo", size=w * h // 8) | {"width": w, "height": h})
            if scale == 1.0:
                break
        return sizes
