// Against a real sealpost serve: the tutorial scenario, paging, the stream (cut and resume), and what the pins show.
import { test, before, after } from "node:test";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileStore } from "../../dist/node/index.js";
import assert from "node:assert/strict";
import {
  startServer,
  trackedWebSocket,
  client,
  email,
  nextEvent,
  take,
} from "../support/server.mjs";
import { codeOf, errorOf } from "../support/codes.mjs";

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

async function pair() {
  const alice = client(server);
  const bob = client(server);
  const a = email("alice");
  const b = email("bob");
  await alice.register(a, "alice password");
  await bob.register(b, "bob password");
  return { alice, bob, a, b };
}

test("the tutorial: Alice and Bob register, Alice writes 'Hello, Bob!', Bob reads it; both see the same safety number", async () => {
  const { alice, bob, a, b } = await pair();
  const sent = await alice.messages.send(b, "Hello, Bob!");
  assert.equal(sent.seq, 1);
  const page = await bob.messages.list();
  assert.equal(page.messages.length, 1);
  const [r] = page.messages;
  assert.ok(r.ok, r.error?.message);
  assert.equal(r.message.text, "Hello, Bob!");
  assert.equal(r.message.from, alice.account().userId);
  assert.equal(r.message.fromEmail, a);
  assert.equal(r.message.outgoing, false);
  assert.equal(r.message.payloadId, sent.payloadId);
  assert.equal(page.next, 1);
  // Alice's sender copy, in her own mailbox.
  const mine = await alice.messages.list();
  assert.equal(mine.messages.length, 1);
  assert.ok(mine.messages[0].ok);
  assert.equal(mine.messages[0].message.outgoing, true);
  assert.equal(mine.messages[0].message.text, "Hello, Bob!");
  assert.equal(mine.messages[0].message.to, bob.account().userId);
  const fromAlice = await alice.contacts.safetyNumber(b);
  const fromBob = await bob.contacts.safetyNumber(a);
  assert.match(fromAlice.pinned.safetyNumber, /^\d{60}$/);
  assert.equal(fromAlice.pinned.safetyNumber, fromBob.pinned.safetyNumber);
  // Reading the same entry again is not a replay.
  const again = await bob.messages.list();
  assert.ok(again.messages[0].ok);
});

test("a wrong password is wrong_password; an unknown user is unknown_user; deleting an entry removes it", async () => {
  const { alice, bob, a, b } = await pair();
  assert.equal(await codeOf(client(server).login(a, "not the password")), "wrong_password");
  assert.equal(await codeOf(alice.messages.send(email("nobody"), "hi")), "unknown_user");
  const sent = await alice.messages.send(b, "to delete");
  await bob.messages.delete(sent.id);
  assert.equal((await bob.messages.list()).messages.length, 0);
  assert.equal(await codeOf(alice.messages.delete(sent.id)), "not_found");
});

test("paging: after pages ascending, before pages newest first, no entry skipped or repeated", async () => {
  const { alice, bob, b } = await pair();
  for (let i = 1; i <= 7; i++) await alice.messages.send(b, `message ${i}`);
  const seen = [];
  let after = 0;
  for (;;) {
    const page = await bob.messages.list({ after, limit: 3 });
    if (page.messages.length === 0) {
      assert.equal(page.next, after);
      break;
    }
    assert.ok(page.messages.length <= 3);
    for (const r of page.messages) seen.push(r.message.text);
    after = page.next;
  }
  assert.deepEqual(
    seen,
    [1, 2, 3, 4, 5, 6, 7].map((i) => `message ${i}`),
  );
  const back = [];
  let beforeSeq = Number.MAX_SAFE_INTEGER;
  for (;;) {
    const page = await bob.messages.list({ before: beforeSeq, limit: 4 });
    if (page.messages.length === 0) break;
    for (const r of page.messages) back.push(r.entry.seq);
    beforeSeq = page.next;
  }
  assert.deepEqual(back, [7, 6, 5, 4, 3, 2, 1]);
  assert.equal(await codeOf(bob.messages.list({ limit: 201 })), "invalid_request");
});

test("stream: the backlog, live messages, and after a cut it resumes from the last seq, each entry once", async () => {
  const { alice, a, b } = await pair();
  const tracked = trackedWebSocket();
  const bob = client(server, { WebSocket: tracked.WebSocket });
  await bob.login(b, "bob password");
  await alice.messages.send(b, "before the stream");
  const ac = new AbortController();
  const it = bob.messages.stream({ signal: ac.signal })[Symbol.asyncIterator]();
  const [first] = await take(it, 1);
  assert.equal(first.message.text, "before the stream");
  await alice.messages.send(b, "live");
  const [live] = await take(it, 1);
  assert.equal(live.message.text, "live");
  assert.equal(live.message.fromEmail, a);
  // Cut the connection under the SDK, send while it is down, and read on.
  const down = nextEvent(bob, "streamDisconnected");
  const reconnected = nextEvent(bob, "streamConnected");
  tracked.sockets[0].terminate();
  await down;
  await alice.messages.send(b, "while cut 1");
  await alice.messages.send(b, "while cut 2");
  const rest = await take(it, 2);
  assert.deepEqual((await reconnected).after, 2);
  assert.deepEqual(
    rest.map((r) => [r.entry.seq, r.message.text]),
    [
      [3, "while cut 1"],
      [4, "while cut 2"],
    ],
  );
  assert.equal(tracked.sockets.length, 2);
  ac.abort();
  assert.equal((await it.next()).done, true);
});

test("rotation: the sender sees key_changed (and the event) with the number the contact sees; after trust both keys' messages open", async () => {
  const { alice, bob, a, b } = await pair();
  await alice.messages.send(b, "to key 1");
  const changed = nextEvent(alice, "keyChanged");
  assert.deepEqual(await bob.rotateKeys("bob password"), { keyVersion: 2 });
  const err = await errorOf(alice.messages.send(b, "to key 2?"));
  assert.equal(err?.code, "key_changed");
  assert.equal(err.trust.pinnedVersion, 1);
  assert.equal(err.trust.offeredVersion, 2);
  assert.equal((await changed).safetyNumber, err.trust.safetyNumber);
  const numbers = await alice.contacts.safetyNumber(b);
  assert.equal(numbers.pending.version, 2);
  assert.equal(
    numbers.pending.safetyNumber,
    (await bob.contacts.safetyNumber(a)).pinned.safetyNumber,
  );
  assert.equal((await alice.contacts.trust(b)).keyVersion, 2);
  await alice.messages.send(b, "to key 2");
  const page = await bob.messages.list();
  assert.deepEqual(
    page.messages.map((r) => [r.entry.keyVersion, r.message?.text]),
    [
      [1, "to key 1"],
      [2, "to key 2"],
    ],
  );
  // Bob writes with his new key: Alice has pinned it, so it opens.
  await bob.messages.send(a, "from key 2");
  const got = await alice.messages.list();
  const incoming = got.messages.filter((r) => !r.message?.outgoing);
  assert.equal(incoming.length, 1);
  assert.ok(incoming[0].ok);
  assert.equal(incoming[0].entry.senderKeyVersion, 2);
});

test("a contact's key version newer than pinned, seen first on an incoming message, is a key_changed failure, not a message", async () => {
  const { alice, bob, a, b } = await pair();
  await bob.messages.send(a, "v1");
  assert.ok((await alice.messages.list()).messages[0].ok);
  await bob.rotateKeys("bob password");
  await bob.messages.send(a, "v2");
  const page = await alice.messages.list({ after: 1 });
  assert.equal(page.messages.length, 1);
  assert.equal(page.messages[0].ok, false);
  assert.equal(page.messages[0].error.code, "key_changed");
  await alice.contacts.trust(b);
  const again = await alice.messages.list({ after: 1 });
  assert.equal(again.messages[0].message.text, "v2");
});

test("replay: the same sealed message posted again is `replayed`, also for a client restarted on the same file store", async () => {
  const posted = [];
  const recording = async (url, init) => {
    if (init?.method === "POST" && new URL(url).pathname === "/v1/messages")
      posted.push({ url, init: { ...init } });
    return fetch(url, init);
  };
  const alice = client(server, { extra: { fetch: recording } });
  const a = email("alice");
  const b = email("bob");
  await alice.register(a, "alice password");
  const dir = await mkdtemp(join(tmpdir(), "sealpost-js-replay-"));
  const key = crypto.getRandomValues(new Uint8Array(32));
  try {
    const bob = client(server, { store: fileStore({ dir, key }) });
    await bob.register(b, "bob password");
    await alice.messages.send(b, "only once");
    const first = await bob.messages.list();
    assert.equal(first.messages[0].message.text, "only once");
    bob.close();
    // The server (or anyone who can post as Alice) stores the very same ciphertext again, as a new entry.
    const again = await fetch(posted[0].url, posted[0].init);
    assert.equal(again.status, 201);
    const restarted = client(server, { store: fileStore({ dir, key }) });
    await restarted.resume();
    const page = await restarted.messages.list({ after: first.next });
    assert.equal(page.messages.length, 1);
    assert.equal(page.messages[0].ok, false);
    assert.equal(page.messages[0].error.code, "replayed");
    // The first entry read again is not a replay.
    assert.ok((await restarted.messages.list()).messages[0].ok);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("send with senderCopy: false leaves nothing in the sender's mailbox; a note to self has no sender copy", async () => {
  const { alice, a, b } = await pair();
  await alice.messages.send(b, "no copy", { senderCopy: false });
  assert.equal((await alice.messages.list()).messages.length, 0);
  await alice.messages.send(a, "note to self");
  const mine = (await alice.messages.list()).messages;
  assert.deepEqual(
    mine.map((r) => [r.message.text, r.message.outgoing]),
    [["note to self", true]],
  );
});
