"""Durability: nothing lost. The intake journal, and the watermark of finished update ids."""

from tgrunner.intake.journal import Journal
from tgrunner.intake.watermark import Watermark

__all__ = ["Journal", "Watermark"]
