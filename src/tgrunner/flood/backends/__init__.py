"""Where shared buckets live: a file for one machine's processes, Redis/Valkey for machines
(see :mod:`tgrunner.flood.shared`, which picks one by URL)."""
