"""An answer from a server that is not the Bot API (a web site, a proxy's error page) is summed
up in one line: the status and the page's title (else its first words), never the page. At
start, ``tgrunner run`` refuses such a server at once, in one line; a 502 page is retried."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from servers import serving
from tgrunner import errors
from tgrunner._http.server import Request, Response
from tgrunner.client.bot import Bot, check_api_url
from tgrunner.sources.polling import PollingOptions, PollingSource

BOTS = Path(__file__).parents[1] / "bots"
TOKEN = "123:AAtesttesttesttesttesttesttesttestt"

NGINX_502 = b"""<html>
<head><title>502 Bad Gateway</title></head>
<body>
<center><h1>502 Bad Gateway</h1></center>
<hr><center>nginx/1.25.3</center>
</body>
</html>
"""

WEB_SITE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>Example &amp; Domain</title>
<style>body { background: #f0f0f2; }</style></head>
<body><div><h1>Example Domain</h1><p>This domain is for use in examples.</p></div></body>
</html>"""


def _html(status: int, body: bytes) -> Response:
    kind = "text/html" if body.startswith(b"<") else "text/plain"
    return Response(status, body, content_type=kind)


async def test_a_proxys_502_page_is_a_server_error_named_by_its_title() -> None:
    async with (
        serving(lambda r: _html(502, NGINX_502)) as server,
        Bot(TOKEN, api_url=server.url) as bot,
    ):
        with pytest.raises(errors.ServerError) as caught:
            await bot.get_me()
    assert caught.value.error_code == 502
    assert str(caught.value) == 'getMe failed with 502: an HTML page (not JSON): "502 Bad Gateway"'


async def test_a_web_site_is_an_unexpected_answer_in_one_line() -> None:
    async with (
        serving(lambda r: _html(200, WEB_SITE)) as server,
        Bot(TOKEN, api_url=server.url) as bot,
    ):
        with pytest.raises(errors.UnexpectedAnswer) as caught:
            await bot.call("getChat", chat_id=1)
    assert isinstance(caught.value, errors.NetworkError) and caught.value.status == 200
    assert str(caught.value) == (
        'getChat: the server answered 200 with an HTML page (not JSON): "Example & Domain", not '
        "a Bot API answer; check the API URL (--api-url) and any proxy in between"
    )


@pytest.mark.parametrize(
    ("status", "body", "gist"),
    [
        (404, b"<html><body><h1>Not here</h1><p>Try   again</p></body></html>",
         'an HTML page (not JSON): "Not here Try again"'),
        (403, b"Forbidden by the proxy\nsecond line",
         'a body (not JSON): "Forbidden by the proxy second line"'),
        (404, b"", "an empty body"),
        (401, b"<html><title>" + b"x" * 500 + b"</title></html>",
         'an HTML page (not JSON): "' + "x" * 79 + '…"'),
        (200, b"<html><script>var a = '<b>';</script></html>", "an HTML page (not JSON)"),
    ],
)  # fmt: skip
async def test_other_bodies_are_summed_up(status: int, body: bytes, gist: str) -> None:
    async with (
        serving(lambda r: _html(status, body)) as server,
        Bot(TOKEN, api_url=server.url) as bot,
    ):
        with pytest.raises(errors.UnexpectedAnswer) as caught:
            await bot.get_me()
    message = str(caught.value)
    assert f"answered {status} with {gist}, not a Bot API answer" in message
    assert "\n" not in message and "<" not in message.replace("<token>", "")


def test_api_urls_are_checked_with_a_hint() -> None:
    assert check_api_url("https://api.telegram.org/") == "https://api.telegram.org"
    assert check_api_url("http://127.0.0.1:8081/telegram") == "http://127.0.0.1:8081/telegram"
    with pytest.raises(ValueError, match=r"such as http://localhost:8081$"):
        check_api_url("localhost:8081")
    with pytest.raises(ValueError, match=r"without /bot: https://example\.com/tg$"):
        check_api_url("https://example.com/tg/bot")
    with pytest.raises(errors.ConfigError, match="The Bot cannot use that API URL: "):
        Bot(TOKEN, api_url="https://api.telegram.org/bot")


async def _run(api_url: str, **env: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tgrunner", "run", "echo_bot:router", "--api-url", api_url,
        "--token", TOKEN, "--no-journal",
        cwd=BOTS, env={**os.environ, **env},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(20):
        _, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, err.decode()


@pytest.mark.slow
async def test_run_against_a_web_site_fails_at_once_in_one_line() -> None:
    async with serving(lambda r: _html(404, WEB_SITE)) as server:
        code, err = await _run(server.url)  # the default start timeout is 60 s: not waited
    assert code == 2, err
    assert "Traceback" not in err and "<" not in err
    [line] = [line for line in err.splitlines() if line.startswith("tgrunner:")]
    assert line == (
        f"tgrunner: {server.url} is not a Bot API server: getMe: the server answered 404 with an "
        'HTML page (not JSON): "Example & Domain", not a Bot API answer; check the API URL '
        "(--api-url) and any proxy in between."
    )


@pytest.mark.slow
async def test_run_behind_a_failing_proxy_says_so_in_one_line() -> None:
    async def handler(request: Request) -> Response:
        return _html(502, NGINX_502)

    async with serving(handler) as server:
        code, err = await _run(server.url, TGRUNNER_START_TIMEOUT="0.5")
    assert code == 2, err
    assert "Traceback" not in err and "<html" not in err and "nginx" not in err
    assert err.strip().splitlines()[-1] == (
        f"tgrunner: Cannot reach the Bot API at {server.url} (getMe failed with 502: an HTML page "
        '(not JSON): "502 Bad Gateway") after 0.5 s. Check --api-url (or TGRUNNER_API_URL), '
        "--proxy and the network."
    )


async def test_at_start_a_404_from_the_bot_api_asks_for_the_servers_root() -> None:
    envelope = b'{"ok":false,"error_code":404,"description":"Not Found"}'
    async with (
        serving(lambda r: Response(404, envelope)) as server,
        Bot(TOKEN, api_url=server.url + "/tg") as bot,
    ):
        with pytest.raises(errors.ConfigError, match=r"404 Not Found\. Give --api-url .* root"):
            await PollingSource(bot, PollingOptions()).start()


async def test_at_start_a_web_page_is_refused_without_retrying() -> None:
    calls = 0

    def handler(request: Request) -> Response:
        nonlocal calls
        calls += 1
        return _html(404, WEB_SITE)

    async with serving(handler) as server, Bot(TOKEN, api_url=server.url) as bot:
        with pytest.raises(errors.ConfigError, match="is not a Bot API server: getMe: "):
            await PollingSource(bot, PollingOptions()).start()
    assert calls == 1
