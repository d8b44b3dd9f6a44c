"""tgrunner's benchmarks: the peers benchmark (``python -m bench``) and FakeTelegram's own speed
(``python bench/fake_speed.py``). See ``bench/README.md``."""
