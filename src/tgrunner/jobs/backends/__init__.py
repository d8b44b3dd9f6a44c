"""Job queue backends, chosen by name in :data:`tgrunner.jobs.queue.BACKENDS`: ``sqlite`` (the
embedded default) and ``rq`` (RQ over Valkey/Redis)."""
