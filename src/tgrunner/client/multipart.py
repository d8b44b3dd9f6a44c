"""Encoding of ``multipart/form-data`` request bodies for uploads.

Written by hand because the encoders at hand are either tied to a client's streaming machinery
(aiohttp ``FormData``) or decode only (python-multipart); a Bot API upload is a handful of text
fields plus files that are already in memory, which is a few lines of bytes joining.
"""

from __future__ import annotations

import mimetypes
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

__all__ = ["InputFile", "encode_multipart", "has_files", "is_file", "reads_files"]


@dataclass(slots=True)
class InputFile:
    """A file to upload: raw bytes with a name, or a path read when the request is built.

    ``content_type`` defaults to a guess from the file name (``application/octet-stream`` when
    unknown).
    """

    data: bytes | Path
    filename: str = "file"
    content_type: str | None = None

    @classmethod
    def from_path(cls, path: str | os.PathLike[str]) -> InputFile:
        p = Path(path)
        return cls(p, p.name)

    def read(self) -> bytes:
        return self.data.read_bytes() if isinstance(self.data, Path) else self.data


def _as_file(value: Any) -> InputFile | None:
    if isinstance(value, InputFile):
        return value
    if isinstance(value, bytes | bytearray):
        return InputFile(bytes(value))
    if isinstance(value, Path):
        return InputFile.from_path(value)
    if hasattr(value, "read") and not isinstance(value, str):
        stream: IO[bytes] = value
        name = os.path.basename(getattr(stream, "name", "file") or "file")
        return InputFile(stream.read(), str(name))
    return None


def is_file(value: Any) -> bool:
    """True for a file to upload (InputFile, bytes, Path or binary stream); reads nothing."""
    if isinstance(value, InputFile | bytes | bytearray | Path):
        return True
    return hasattr(value, "read") and not isinstance(value, str)


def has_files(params: dict[str, Any]) -> bool:
    """True when any parameter is a file to upload (InputFile, bytes, Path or binary stream)."""
    return any(is_file(v) for v in params.values())


def reads_files(params: dict[str, Any]) -> bool:
    """True when encoding ``params`` reads a file or a stream (a Path, an InputFile of a Path,
    or anything with ``read``): work for a thread, not the event loop."""
    for value in params.values():
        data = value.data if isinstance(value, InputFile) else value
        if isinstance(data, Path):
            return True
        if not isinstance(data, str | bytes | bytearray) and hasattr(data, "read"):
            return True
    return False


def _quote(name: str) -> str:
    return name.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "").replace("\n", "")


def encode_multipart(params: dict[str, Any]) -> tuple[bytes, str]:
    """Encode parameters as multipart/form-data; return ``(body, content_type)``.

    Files become file parts; str values are sent as is; any other value is JSON-serialised,
    as the Bot API expects for ``reply_markup``, ``entities`` and the like.
    """
    boundary = "tgrunner-" + secrets.token_hex(12)
    out: list[bytes] = []
    dash = f"--{boundary}\r\n".encode()
    for name, value in params.items():
        if value is None:
            continue
        file = None if isinstance(value, str | int | float | bool) else _as_file(value)
        out.append(dash)
        if file is not None:
            ctype = (
                file.content_type
                or mimetypes.guess_type(file.filename)[0]
                or "application/octet-stream"
            )
            out.append(
                f'Content-Disposition: form-data; name="{_quote(name)}"; '
                f'filename="{_quote(file.filename)}"\r\nContent-Type: {ctype}\r\n\r\n'.encode()
            )
            out.append(file.read())
        else:
            if isinstance(value, str):
                text = value.encode()
            elif isinstance(value, bool):
                text = b"true" if value else b"false"
            elif isinstance(value, int | float):
                text = str(value).encode()
            else:
                text = orjson.dumps(value)
            out.append(f'Content-Disposition: form-data; name="{_quote(name)}"\r\n\r\n'.encode())
            out.append(text)
        out.append(b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={boundary}"
