// grammY's Api against FakeTelegram: calls a representative set of Bot API methods and prints
// one JSON object, {label: {method, result}}, on stdout. Any failure exits 1 with the error on
// stderr.
//
// Run by tests/testing/test_fidelity_grammy.py, which starts the fake, sends the first user
// message, presses the button this script sends, and checks every result. Configuration comes
// from the environment: GRAMMY_HOME (the folder grammY is installed in), API_URL, TOKEN,
// CHAT_ID (a user's private chat), GROUP_ID (a supergroup with that user) and WEBHOOK_URL.
"use strict";

const path = require("node:path");

function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

const { Bot, InputFile } = require(path.join(env("GRAMMY_HOME"), "node_modules", "grammy"));

const API_URL = env("API_URL");
const TOKEN = env("TOKEN");
const CHAT_ID = Number(env("CHAT_ID"));
const GROUP_ID = Number(env("GROUP_ID"));
const WEBHOOK_URL = env("WEBHOOK_URL");

// Every byte value behind a PNG signature: the upload must survive multipart byte for byte.
const PHOTO = Buffer.concat([
  Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
  Buffer.from(Array.from({ length: 256 }, (_, i) => i)),
]);
const MENU = {
  inline_keyboard: [
    [
      { text: "Ping", callback_data: "ping" },
      { text: "Docs", url: "https://core.telegram.org/bots/api" },
    ],
  ],
};

const api = new Bot(TOKEN, { client: { apiRoot: API_URL } }).api;
const results = {};

async function call(label, method, ...args) {
  const result = await api[method](...args);
  results[label] = { method, result };
  return result;
}

async function main() {
  await call("getMe", "getMe");
  const updates = await call("getUpdates", "getUpdates", { timeout: 10 });
  const start = updates[0].message;
  const sent = await call("sendMessage", "sendMessage", CHAT_ID, "Pick one", {
    reply_parameters: { message_id: start.message_id },
    reply_markup: MENU,
  });

  const photo = await call("sendPhoto", "sendPhoto", CHAT_ID, new InputFile(PHOTO, "dot.png"), {
    caption: "a dot",
  });
  const file = await call("getFile", "getFile", photo.photo.at(-1).file_id);
  // grammY's core has no download helper (that is the files plugin): fetch the file URL.
  const response = await fetch(`${API_URL}/file/bot${TOKEN}/${file.file_path}`);
  if (!response.ok) throw new Error(`download of ${file.file_path}: HTTP ${response.status}`);
  results.download = Buffer.from(await response.arrayBuffer()).toString("base64");

  await call("editMessageText", "editMessageText", CHAT_ID, sent.message_id, "Pick again", {
    reply_markup: MENU,
  });
  // The test presses Ping once it sees the edit; this long poll returns the press.
  const presses = await call("getUpdatesPress", "getUpdates", {
    offset: updates.at(-1).update_id + 1,
    timeout: 10,
  });
  await call("answerCallbackQuery", "answerCallbackQuery", presses[0].callback_query.id, {
    text: "pong!",
  });

  await call("getChat", "getChat", CHAT_ID);
  await call("getChatGroup", "getChat", GROUP_ID);

  // The press was fetched but never confirmed, so it is still pending, as in Telegram.
  await call("setWebhook", "setWebhook", WEBHOOK_URL, { secret_token: "s3cret", max_connections: 7 });
  await call("getWebhookInfo", "getWebhookInfo");
  await call("deleteWebhook", "deleteWebhook", { drop_pending_updates: true });
  await call("getWebhookInfoAfter", "getWebhookInfo");

  // Methods without behaviour of their own: the fake generates their results from the spec.
  await call("getMyCommands", "getMyCommands");
  await call("getMyDefaultAdministratorRights", "getMyDefaultAdministratorRights");
  await call("getStarTransactions", "getStarTransactions", { limit: 3 });
  await call("getMyStarBalance", "getMyStarBalance");
  await call("getAvailableGifts", "getAvailableGifts");
  await call("getBusinessConnection", "getBusinessConnection", "abc");
  await call("getUserChatBoosts", "getUserChatBoosts", GROUP_ID, CHAT_ID);
  await call("getStickerSet", "getStickerSet", "animals");
}

main().then(
  () => process.stdout.write(JSON.stringify(results), () => process.exit(0)),
  (error) => {
    console.error(error instanceof Error ? error.stack : error);
    process.exit(1);
  },
);
