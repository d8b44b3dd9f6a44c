"""The Bot API client every front-end uses, and the HTTP transports under it."""

from tgrunner.client.bot import DEFAULT_API_URL, Bot
from tgrunner.client.multipart import InputFile
from tgrunner.client.options import ClientOptions

__all__ = ["DEFAULT_API_URL", "Bot", "ClientOptions", "InputFile"]
