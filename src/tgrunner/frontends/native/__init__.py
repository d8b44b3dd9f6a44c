"""The native front-end: a small router, its context, and filters."""

from tgrunner.frontends.native.router import Context, Router

__all__ = ["Context", "Router"]
