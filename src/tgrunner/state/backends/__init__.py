"""State store backends, chosen by name in :data:`tgrunner.state.registry.BACKENDS`: ``sqlite``,
``postgresql``, ``mysql``, ``redis`` and ``memory``. Each implements
:class:`tgrunner.state.api.Backend`."""
