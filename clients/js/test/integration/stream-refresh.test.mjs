// Against a server with 3-second access tokens: a stream outlives its first tokens by re-authenticating on the open socket after each refresh (§4.2).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, client, email, nextEvent, take } from "../support/server.mjs";

let server;
before(async () => {
  server = await startServer({ accessTokenTtl: 3 });
});
after(async () => {
  await server?.stop();
});

test("a stream stays on one connection across five refreshes and still delivers", async () => {
  const alice = client(server);
  const bob = client(server);
  const b = email("bob");
  await alice.register(email("alice"), "alice password");
  await bob.register(b, "bob password");
  let connects = 0;
  let disconnects = 0;
  bob.on("streamConnected", () => connects++);
  bob.on("streamDisconnected", () => disconnects++);
  const ac = new AbortController();
  const it = bob.messages.stream({ signal: ac.signal })[Symbol.asyncIterator]();
  const first = take(it, 1);
  await nextEvent(bob, "streamConnected");
  // 3-second tokens, refreshed at 75% of their life: five refreshes take about 11 s, past the first
  // token's expiry plus the server's 5-second leeway, when a stream that did not re-authenticate is closed.
  let refreshes = 0;
  await new Promise((resolve) => {
    const off = bob.on("tokenRefreshed", () => {
      if (++refreshes === 5) {
        off();
        resolve();
      }
    });
  });
  await alice.messages.send(b, "after five refreshes");
  const [r] = await first;
  assert.equal(r.message.text, "after five refreshes");
  assert.equal(connects, 1);
  assert.equal(disconnects, 0);
  ac.abort();
  await it.next();
});
