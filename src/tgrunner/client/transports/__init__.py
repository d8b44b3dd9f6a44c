"""HTTP transports of the Bot API client: ``fast`` (httptools, the default)."""
