"""FakeTelegram's internals. The public entry point is :mod:`tgrunner.testing`."""
