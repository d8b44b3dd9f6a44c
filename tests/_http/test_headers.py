"""add_header, shared by the server's and the client's parser callbacks."""

from __future__ import annotations

from tgrunner._http.headers import add_header


def test_repeated_header_with_the_same_value_is_joined() -> None:
    headers: dict[str, str] = {}
    add_header(headers, b"X-A", b"1")
    add_header(headers, b"x-a", b"1")
    assert headers == {"x-a": "1, 1"}


def test_repeated_header_with_other_values_is_joined_in_order() -> None:
    headers: dict[str, str] = {}
    for value in (b"a", b"bb", b"", b"a"):
        add_header(headers, b"Set-Cookie", value)
    assert headers == {"set-cookie": "a, bb, , a"}


def test_names_are_lower_cased_and_values_latin1() -> None:
    headers: dict[str, str] = {}
    add_header(headers, b"Content-TYPE", b"caf\xe9")
    assert headers == {"content-type": "café"}
