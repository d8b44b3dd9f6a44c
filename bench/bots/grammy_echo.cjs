// The grammY echo bot: `node grammy_echo.cjs runner|start`.
//   runner: @grammyjs/runner `run(bot)`, with `sequentialize` by chat id (per-chat order);
//   start:  grammY's own `bot.start()` (one update at a time).
// grammy and @grammyjs/runner are found through NODE_PATH (the benchmark installs them into
// bench/.scratch/node_modules). The server comes from BENCH_API_URL, the token from BOT_TOKEN.
"use strict";

const { Bot } = require("grammy");
const { run, sequentialize } = require("@grammyjs/runner");

const mode = process.argv[2] || "runner";
if (mode !== "runner" && mode !== "start") {
  console.error(`usage: node grammy_echo.cjs runner|start, not ${mode}`);
  process.exit(2);
}

const bot = new Bot(process.env.BOT_TOKEN, {
  client: { apiRoot: process.env.BENCH_API_URL || "https://api.telegram.org" },
});
if (mode === "runner") {
  bot.use(sequentialize((ctx) => ctx.chat?.id.toString()));
}
bot.on("message:text", (ctx) =>
  ctx.reply(ctx.msg.text, { reply_parameters: { message_id: ctx.msg.message_id } }),
);
bot.catch((err) => console.error("handler error:", err.message));

let stop;
if (mode === "runner") {
  const handle = run(bot);
  stop = () => (handle.isRunning() ? handle.stop() : undefined);
} else {
  bot.start({ allowed_updates: ["message"] });
  stop = () => bot.stop();
}
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.once(signal, async () => {
    await stop();
    process.exit(0);
  });
}
