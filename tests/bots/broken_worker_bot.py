"""A bot whose import fails, as when its database is down: every worker's start-up fails."""

from __future__ import annotations

raise RuntimeError("the database at db.example:5432 is down")
