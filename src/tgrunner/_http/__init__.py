"""A hand-written HTTP/1.1 server on asyncio Protocols and httptools (FakeTelegram's).

It exists because aiohttp costs about 100-200 µs of CPU per request, while FakeTelegram must
serve 20,000 requests a second on one core. See :mod:`.server` for what it does and does not
do. The matching client is :mod:`tgrunner.client.transports.fast`.
"""

from tgrunner._http.server import Handler, HTTPServer, Request, Response

__all__ = ["HTTPServer", "Handler", "Request", "Response"]
