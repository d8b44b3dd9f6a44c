// The CPU-bound grammY echo bot: each handler spins 1 ms of CPU (spin.cjs), then replies.
//   node grammy_cpu.cjs seq                   run(bot) + sequentialize by chat id, handler
//                                             in the main thread (one core)
//   node grammy_cpu.cjs distribute [N]        run(bot) + distribute(worker, {count: N}):
//                                             N worker threads (default 2), each update to
//                                             the thread update_id % N; no sequentialize
//   node grammy_cpu.cjs distribute-seq [N]    the same behind sequentialize by chat id
// The handler of the distribute modes is in grammy_cpu_worker.cjs (a BotWorker).
// grammy and @grammyjs/runner are found through NODE_PATH; the server comes from
// BENCH_API_URL, the token from BOT_TOKEN.
"use strict";

const { Bot } = require("grammy");
const { run, sequentialize, distribute } = require("@grammyjs/runner");
const { spin } = require("./spin.cjs");

const mode = process.argv[2] || "seq";
const count = Number(process.argv[3] || 2);
if (!["seq", "distribute", "distribute-seq"].includes(mode) || !(count >= 1)) {
  console.error(`usage: node grammy_cpu.cjs seq|distribute|distribute-seq [N], not ${mode}`);
  process.exit(2);
}

const bot = new Bot(process.env.BOT_TOKEN, {
  client: { apiRoot: process.env.BENCH_API_URL || "https://api.telegram.org" },
});
if (mode !== "distribute") {
  bot.use(sequentialize((ctx) => ctx.chat?.id.toString()));
}
if (mode === "seq") {
  bot.on("message:text", (ctx) => {
    spin();
    return ctx.reply(ctx.msg.text, { reply_parameters: { message_id: ctx.msg.message_id } });
  });
} else {
  bot.use(distribute(`${__dirname}/grammy_cpu_worker.cjs`, { count }));
}
bot.catch((err) => console.error("handler error:", err.message));

const handle = run(bot);
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.once(signal, async () => {
    if (handle.isRunning()) await handle.stop();
    process.exit(0);
  });
}
