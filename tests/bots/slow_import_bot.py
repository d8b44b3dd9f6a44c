"""A bot whose import takes 30 s (a slow start-up), for the start-up grace."""

from __future__ import annotations

import time

time.sleep(30)
