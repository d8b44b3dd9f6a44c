"""The ``Date`` header of HTTPServer's responses (RFC 7231): on answers, on HEAD answers and
on error answers, in IMF-fixdate form, of the host's clock, formatted once per second."""

from __future__ import annotations

import asyncio
import math
import re
import time
from email.utils import parsedate_to_datetime

import pytest

from servers import serving
from tgrunner._http.server import Request, Response
from tgrunner._http.wire import date_line

IMF_FIXDATE = re.compile(
    r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"\d{4} \d\d:\d\d:\d\d GMT"
)


def ok(request: Request) -> Response:
    return Response(200, b'{"ok":true}')


async def _exchange(raw: bytes, port: int) -> dict[str, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        head = await reader.readuntil(b"\r\n\r\n")
    finally:
        writer.close()
        await writer.wait_closed()
    lines = head.decode("latin-1").split("\r\n")[1:]
    names = [line.partition(":")[0].lower() for line in lines if line]
    assert names.count("date") == 1, lines
    return {n: line.partition(":")[2].strip() for n, line in zip(names, lines, strict=False)}


@pytest.mark.timeout(10)
async def test_every_response_has_a_date_of_the_hosts_clock() -> None:
    async with serving(ok) as server:
        before = math.floor(time.time())
        answers = [
            await _exchange(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n", server.port),
            await _exchange(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n", server.port),
            await _exchange(b"NOT HTTP AT ALL\r\n\r\n", server.port),  # the 400 path
        ]
        after = time.time()
    for headers in answers:
        date = headers["date"]
        assert IMF_FIXDATE.fullmatch(date), date
        assert before <= parsedate_to_datetime(date).timestamp() <= after


@pytest.mark.timeout(10)
def test_the_date_line_is_formatted_once_per_second() -> None:
    for _ in range(100):
        second = int(time.time())
        first, again = date_line(), date_line()
        if int(time.time()) == second:
            break
    else:
        pytest.fail("the clock ticked a second during each of 100 tries")
    assert again is first  # the cached bytes, not a new formatting
    assert first.startswith(b"Date: ") and first.endswith(b"\r\n")
    assert parsedate_to_datetime(first[6:-2].decode()).timestamp() == second
