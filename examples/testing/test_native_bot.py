"""The native bot, tested with a plain (sync) test: no async plugin needed."""

from native_echo import router

from tgrunner.testing import FakeTelegram, running


def test_start_then_echo(fake_telegram: FakeTelegram) -> None:
    alice = fake_telegram.user("Alice")
    with running(router, fake_telegram) as runner:
        alice.send("/start")
        alice.send("ping")
        start, echo = fake_telegram.wait_for_replies_sync(alice, 2)
    assert start["text"] == "Hello! Send me anything."
    assert echo["text"] == "ping"
    assert runner.stats.errors == 0
