// The worker thread of `grammy_cpu.cjs distribute`: a grammY runner BotWorker whose handler
// spins 1 ms of CPU (spin.cjs), then replies, as the main bot's handler does in `seq` mode.
"use strict";

const { BotWorker } = require("@grammyjs/runner");
const { spin } = require("./spin.cjs");

const bot = new BotWorker(process.env.BOT_TOKEN, {
  client: { apiRoot: process.env.BENCH_API_URL || "https://api.telegram.org" },
});
bot.on("message:text", (ctx) => {
  spin();
  return ctx.reply(ctx.msg.text, { reply_parameters: { message_id: ctx.msg.message_id } });
});
bot.catch((err) => console.error("worker handler error:", err.message));
