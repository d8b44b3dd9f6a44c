"""The public API is exactly what ``__all__`` says, and every name in it exists."""

from __future__ import annotations

import tgrunner


def test_all_names_exist() -> None:
    for name in tgrunner.__all__:
        assert hasattr(tgrunner, name), name


def test_public_names_are_exported() -> None:
    public = {n for n in dir(tgrunner) if not n.startswith("_")}
    # Submodules imported as a side effect of importing the package are not API.
    modules = {n for n in public if type(getattr(tgrunner, n)).__name__ == "module"}
    assert public - modules - set(tgrunner.__all__) == set()
    assert "errors" in tgrunner.__all__
