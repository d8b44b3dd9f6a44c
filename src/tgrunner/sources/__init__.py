"""Where updates come from: polling (``getUpdates``), webhooks, and the scale-out stream."""
