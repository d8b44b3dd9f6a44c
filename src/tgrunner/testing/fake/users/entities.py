"""Text entities: what Telegram detects in the plain text of a message, with offsets counted in
UTF-16 code units."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["parse_entities", "utf16_len"]

# Bare domains are links only with a known top-level domain, as in Telegram's parser; otherwise
# "file.txt" or "e.g" in prose would become links.
_TLDS = (
    "com|org|net|io|dev|app|ai|me|co|info|biz|edu|gov|xyz|online|site|tech|ru|de|uk|fr|it|es|"
    "nl|pl|ua|by|kz|in|jp|cn|br|us|ca|au|eu|ch|se|no|fi|tv|cc|ly|gg|to|sh|so"
)
_SCANNERS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "email",
        re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"),
    ),
    (
        "url",
        re.compile(
            r"(?<![\w@/.])(?:(?:https?|ftp|tg)://[^\s<>\"]+"
            rf"|(?:[A-Za-z0-9-]+\.)+(?:{_TLDS})(?::\d{{1,5}})?(?:/[^\s<>\"]*)?)(?![\w@])",
            re.IGNORECASE,
        ),
    ),
    (
        "bot_command",
        re.compile(r"(?<![\w/@])/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?(?![\w@/])"),
    ),
    ("mention", re.compile(r"(?<![\w@])@[A-Za-z0-9_]{5,32}(?![\w@])")),
    # A hashtag needs a non-digit: "#1" is not one.
    ("hashtag", re.compile(r"(?<![\w#])#\w*[^\W\d]\w*")),
    ("cashtag", re.compile(r"(?<![\w$])\$[A-Z]{3,8}(?![\w$])")),
)
_URL_TAIL = ".,:;!?'\")]"


def utf16_len(text: str) -> int:
    """The length of ``text`` in UTF-16 code units, the unit of Telegram's entity offsets.

    A character outside the Basic Multilingual Plane (most emoji) counts twice.
    """
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def parse_entities(text: str) -> list[dict[str, Any]]:
    """The entities Telegram detects in plain text, with UTF-16 ``offset`` and ``length``.

    Detected: ``bot_command`` (``/cmd`` and ``/cmd@botname``), ``mention`` (``@username``, 5–32
    characters), ``hashtag``, ``cashtag``, ``url`` (with a scheme, or a bare domain with a common
    top-level domain) and ``email``. Of overlapping matches the earlier one is kept, and of
    two at the same position the longer one.
    """
    found: list[tuple[int, int, str]] = []
    for kind, pattern in _SCANNERS:
        for m in pattern.finditer(text):
            start, end = m.span()
            if kind == "url":
                # Trailing punctuation ends the sentence, not the link.
                while end > start and text[end - 1] in _URL_TAIL:
                    if text[end - 1] == ")" and text.count("(", start, end) >= text.count(
                        ")", start, end
                    ):
                        break
                    end -= 1
            found.append((start, end, kind))
    found.sort(key=lambda e: (e[0], -(e[1] - e[0])))
    entities: list[dict[str, Any]] = []
    last_end = 0
    for start, end, kind in found:
        if start < last_end:
            continue
        last_end = end
        offset = utf16_len(text[:start])
        entities.append({"type": kind, "offset": offset, "length": utf16_len(text[start:end])})
    return entities
