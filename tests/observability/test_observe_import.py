"""prometheus_client is optional: ``import tgrunner`` never imports it, and asking for metrics
without it says how to install it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import sys

    import tgrunner
    import tgrunner.observability
    assert "prometheus_client" not in sys.modules, "imported by import tgrunner"

    class Missing:
        # A meta path finder that makes prometheus_client absent, as when it is not installed.
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] == "prometheus_client":
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, Missing())
    try:
        tgrunner.observability.Metrics()
    except tgrunner.ConfigError as exc:
        print(exc)
    else:
        sys.exit("Metrics() worked without prometheus_client")
    """
)


@pytest.mark.timeout(60)
def test_metrics_without_prometheus_client_say_how_to_install_it() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=50, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "pip install 'tgrunner[metrics]'" in done.stdout
    assert len(done.stdout.strip().splitlines()) == 1


@pytest.mark.timeout(10)
def test_the_bounded_label_tables_match_the_bot_api() -> None:
    from tgrunner.observability._names import BOT_API_METHODS
    from tgrunner.sources.polling import UPDATE_KINDS
    from tgrunner.testing.botapi import load_spec

    spec = load_spec()
    assert set(BOT_API_METHODS) == set(spec.methods)
    assert list(UPDATE_KINDS) == spec.update_kinds()


@pytest.mark.timeout(10)
def test_the_public_names_of_the_package() -> None:
    import tgrunner.observability

    assert set(tgrunner.observability.__all__) == {
        "OUTCOMES", "SOURCES", "Aggregator", "Metrics", "ObserveServer", "ReadyChecks",
        "api_status", "parse_listen",
    }  # fmt: skip
    assert all(hasattr(tgrunner.observability, name) for name in tgrunner.observability.__all__)
