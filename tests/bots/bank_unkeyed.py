"""The bank of ``examples/bank_bot.py`` without its ordering keys (a router that includes it
has the default keys): transfers that share an account run at once, in two worker
processes, and only the transaction keeps the money right."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[2] / "examples"))

import bank_bot

from tgrunner.frontends.native import Router

router = Router()
router.include(bank_bot.router)
