"""Executors: where a ready update's handler runs (inline in this process, by default)."""
