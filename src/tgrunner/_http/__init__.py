"""A hand-written HTTP/1.1 server and client on asyncio Protocols and httptools.

Both exist because aiohttp costs about 100-200 µs of CPU per request on each side, while
FakeTelegram must serve 20,000 requests a second on one core and the bot runtime aims at 50 µs
per echoed update. See :mod:`.server` and :mod:`.client` for what each does and does not do.
"""

from tgrunner._http.client import ClientResponse, HTTPClient, TransportError, TransportTimeout
from tgrunner._http.server import Handler, HTTPServer, Request, Response

__all__ = [
    "ClientResponse",
    "HTTPClient",
    "HTTPServer",
    "Handler",
    "Request",
    "Response",
    "TransportError",
    "TransportTimeout",
]
