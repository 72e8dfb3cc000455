"use strict";
const assert = require("node:assert");
const http = require("node:http");
const { test } = require("node:test");
const { handler } = require("../server.js");

async function get(env, path) {
  const server = http.createServer(handler(env)).listen(0);
  await new Promise((resolve) => server.once("listening", resolve));
  try {
    const res = await fetch(`http://127.0.0.1:${server.address().port}${path}`);
    return [res.status, await res.json()];
  } finally {
    server.close();
  }
}

test("health needs the API token", async () => {
  assert.deepStrictEqual(await get({}, "/health"), [503, { status: "no API_TOKEN" }]);
  assert.deepStrictEqual(await get({ API_TOKEN: "t" }, "/health"), [200, { status: "ok" }]);
});

test("version is the build's", async () => {
  assert.deepStrictEqual(await get({ APP_VERSION: "abc" }, "/version"), [200, { version: "abc" }]);
});
