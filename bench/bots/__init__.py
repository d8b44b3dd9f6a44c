"""Echo bots for the peers benchmark: each sends every message's text back into its chat.

The Python bots read the Bot API server from ``BENCH_API_URL`` and the token from ``BOT_TOKEN``;
``grammy_echo.cjs`` does the same under Node.
"""
