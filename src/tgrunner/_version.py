"""The version of tgrunner, in a module of its own so that any layer may read it without
importing the package's whole public API (which imports the runtime)."""

__version__ = "0.1.0"
