// Against a real sealpost serve: PROTOCOL §5 (password change, recovery, deletion), sessions, revocation and refresh-token reuse.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { memoryStore } from "../../dist/index.js";
import { startServer, client, email, nextEvent, take } from "../support/server.mjs";
import { codeOf, errorOf } from "../support/codes.mjs";

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

test("password change: the new password signs in, the old one no longer does, other sessions end, messages still open", async () => {
  const a = email("alice");
  const b = email("bob");
  const alice = client(server);
  const bob = client(server);
  await alice.register(a, "old password");
  await bob.register(b, "bob password");
  await bob.messages.send(a, "before the change");
  const otherDevice = client(server);
  await otherDevice.login(a, "old password");
  assert.equal(
    await codeOf(alice.changePassword("wrong password", "new password")),
    "wrong_password",
  );
  await alice.changePassword("old password", "new password");
  assert.equal((await alice.messages.list()).messages[0].message.text, "before the change");
  assert.equal(await codeOf(otherDevice.sessions()), "signed_out");
  assert.equal(await codeOf(client(server).login(a, "old password")), "wrong_password");
  const fresh = client(server);
  await fresh.login(a, "new password");
  assert.equal((await fresh.messages.list()).messages[0].message.text, "before the change");
});

test("recovery: a typo is caught, a wrong key refused, the right one sets a new password; every session ends; old messages open", async () => {
  const a = email("alice");
  const b = email("bob");
  const alice = client(server);
  const bob = client(server);
  const { recoveryKey } = await alice.register(a, "forgotten");
  assert.match(recoveryKey, /^([0-9A-Z]{4}-){13}[0-9A-Z]{4}$/);
  await bob.register(b, "bob password");
  await bob.messages.send(a, "read me after recovery");
  const newDevice = client(server);
  const typo = recoveryKey.slice(0, -1) + (recoveryKey.endsWith("0") ? "1" : "0");
  assert.equal(await codeOf(newDevice.recover(a, typo, "new password")), "recovery_key_typo");
  const stranger = client(server);
  const { recoveryKey: otherKey } = await stranger.register(email("carol"), "carol password");
  assert.equal(await codeOf(newDevice.recover(a, otherKey, "new password")), "unauthenticated");
  const account = await newDevice.recover(
    a,
    recoveryKey.toLowerCase().replaceAll("-", " "),
    "new password",
  );
  assert.equal(account.userId, alice.account().userId);
  assert.equal(await codeOf(alice.sessions()), "signed_out");
  assert.equal(
    (await newDevice.messages.list()).messages[0].message.text,
    "read me after recovery",
  );
  assert.equal(await codeOf(client(server).login(a, "forgotten")), "wrong_password");
  // A new recovery key replaces the old one.
  const replaced = await newDevice.newRecoveryKey("new password");
  assert.notEqual(replaced, recoveryKey);
  assert.equal(await codeOf(client(server).recover(a, recoveryKey, "x")), "unauthenticated");
  await client(server).recover(a, replaced, "third password");
});

test("deletion: the account is gone, what it sent still opens, its email registered again is a contact change", async () => {
  const a = email("alice");
  const b = email("bob");
  const alice = client(server);
  const bob = client(server);
  await alice.register(a, "alice password");
  await bob.register(b, "bob password");
  await alice.messages.send(b, "hi Bob");
  await bob.messages.send(a, "from the old Bob");
  const bobId = bob.account().userId;
  const signedOut = nextEvent(bob, "signedOut");
  assert.equal(await codeOf(bob.deleteAccount("wrong")), "wrong_password");
  await bob.deleteAccount("bob password");
  assert.equal((await signedOut).userId, bobId);
  assert.equal(bob.account(), undefined);
  assert.equal(await codeOf(alice.messages.send(b, "anyone?")), "unknown_user");
  assert.equal(await codeOf(client(server).login(b, "bob password")), "wrong_password");
  const inbox = await alice.messages.list();
  const fromBob = inbox.messages.find((r) => r.entry.from === bobId);
  assert.ok(fromBob.ok);
  assert.equal(fromBob.message.text, "from the old Bob");
  const newBob = client(server);
  await newBob.register(b, "new bob");
  const changed = nextEvent(alice, "contactChanged");
  const err = await errorOf(alice.messages.send(b, "who are you?"));
  assert.equal(err?.code, "contact_changed");
  assert.equal(err.trust.pinnedUserId, bobId);
  assert.equal(err.trust.userId, newBob.account().userId);
  assert.equal((await changed).safetyNumber, err.trust.safetyNumber);
  const trusted = await alice.contacts.trust(b);
  assert.equal(trusted.userId, newBob.account().userId);
  // The old account's message now shows as from an unverified sender claiming the email.
  const old = (await alice.messages.list()).messages.find((r) => r.entry.from === bobId);
  assert.equal(old.message.fromEmail, undefined);
  assert.equal(old.message.fromClaimedEmail, b);
  await alice.messages.send(b, "hello, new Bob");
  assert.equal((await newBob.messages.list()).messages[0].message.text, "hello, new Bob");
});

test("sessions: listed with the current one; revoking one closes its stream with 4401 and ends the stream signed_out", async () => {
  const b = email("bob");
  const laptop = client(server);
  await laptop.register(b, "bob password", { deviceName: "laptop" });
  const phone = client(server);
  await phone.login(b, "bob password", { deviceName: "phone" });
  const sessions = await laptop.sessions();
  assert.equal(sessions.length, 2);
  assert.deepEqual(sessions.map((s) => [s.deviceName, s.current]).sort(), [
    ["laptop", true],
    ["phone", false],
  ]);
  const it = phone.messages.stream()[Symbol.asyncIterator]();
  const first = it.next();
  await nextEvent(phone, "streamConnected");
  const closed = nextEvent(phone, "streamDisconnected");
  await laptop.revokeSession(sessions.find((s) => !s.current).id);
  assert.equal((await closed).code, 4401);
  assert.equal(await codeOf(first), "signed_out");
  assert.equal(phone.account(), undefined);
});

test("a refresh token presented twice revokes the whole session", async () => {
  const a = email("alice");
  const store = memoryStore();
  const alice = client(server, { store });
  await alice.register(a, "alice password");
  const id = alice.account().userId;
  const tokenOf = async () =>
    JSON.parse(new TextDecoder().decode(await store.load(server.url, id))).session.refreshToken;
  const old = await tokenOf();
  await alice.resume(id); // refreshes: the stored token rotates
  assert.notEqual(await tokenOf(), old);
  const reuse = await fetch(`${server.url}/v1/auth/refresh`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ refresh_token: old }),
  });
  assert.equal(reuse.status, 401);
  assert.equal(await codeOf(alice.sessions()), "signed_out");
});

test("resume: a new client on the same store picks the session up without the password; logout deletes the record", async () => {
  const a = email("alice");
  const store = memoryStore();
  const first = client(server, { store });
  await first.register(a, "alice password");
  await first.messages.send(a, "note to self");
  const second = client(server, { store });
  const account = await second.resume();
  assert.equal(account.email, a);
  assert.equal((await second.messages.list()).messages[0].message.text, "note to self");
  // Both refresh at once from the same stored token: the lock makes them take turns, neither reuses a token.
  await Promise.all([first.resume(), second.resume()]);
  assert.equal((await first.sessions()).length, 1);
  assert.equal((await second.sessions()).length, 1);
  await second.logout();
  assert.deepEqual(await store.list(server.url), []);
  assert.equal(await codeOf(client(server, { store }).resume()), "signed_out");
  assert.equal(await codeOf(first.sessions()), "signed_out");
});

test("a prelogin answer outside the bounds is refused before anything is derived or sent", async () => {
  const calls = [];
  const weak = async (url, init) => {
    calls.push(new URL(url).pathname);
    if (new URL(url).pathname === "/v1/auth/prelogin") {
      return new Response(
        JSON.stringify({
          kdf: { alg: "argon2id13", salt: "AAAAAAAAAAAAAAAAAAAAAA", opslimit: 1, memlimit: 8192 },
        }),
        { status: 200 },
      );
    }
    return fetch(url, init);
  };
  const c = client(server, {
    extra: { fetch: weak, kdf: async () => assert.fail("derived with a weak kdf") },
  });
  assert.equal(await codeOf(c.login(email("x"), "pw")), "kdf_refused");
  assert.deepEqual(calls, ["/v1/auth/prelogin"]);
});

test("lifecycle calls run one at a time: two rotations at once make versions 2 and 3", async () => {
  const alice = client(server);
  await alice.register(email("alice"), "alice password");
  const rotated = await Promise.all([
    alice.rotateKeys("alice password"),
    alice.rotateKeys("alice password"),
  ]);
  assert.deepEqual(
    rotated.map((r) => r.keyVersion),
    [2, 3],
  );
  assert.equal(alice.account().keyVersion, 3);
  await alice.messages.send(alice.account().email, "note to self with key 3");
  const [r] = (await alice.messages.list()).messages;
  assert.equal(r.entry.keyVersion, 3);
  assert.equal(r.message.text, "note to self with key 3");
});

test("across tabs: refreshes take turns under navigator.locks, and a logout in one tab signs the others out", async () => {
  const names = [];
  let held = 0;
  let most = 0;
  const tails = new Map();
  const locks = {
    request(name, fn) {
      names.push(name);
      const run = (tails.get(name) ?? Promise.resolve()).then(async () => {
        most = Math.max(most, ++held);
        try {
          return await fn();
        } finally {
          held--;
        }
      });
      tails.set(
        name,
        run.catch(() => undefined),
      );
      return run;
    },
  };
  Object.defineProperty(globalThis, "navigator", { value: { locks }, configurable: true });
  try {
    const store = memoryStore();
    const tab1 = client(server, { store });
    await tab1.register(email("alice"), "alice password");
    const tab2 = client(server, { store });
    await tab2.resume();
    await Promise.all([tab1.resume(), tab2.resume()]);
    const id = tab1.account().userId;
    assert.ok(names.length >= 3);
    assert.ok(names.every((n) => n === `sealpost ${server.url} ${id}`));
    assert.equal(most, 1);
    assert.equal((await tab1.sessions()).length, 1);
    assert.equal((await tab2.sessions()).length, 1);
    const gone = nextEvent(tab2, "signedOut");
    await tab1.logout();
    assert.equal((await gone).userId, id);
    assert.equal(tab2.account(), undefined);
  } finally {
    delete globalThis.navigator;
  }
});

test("a tab writing its pins never puts back a refresh token another tab has replaced, and keeps the other's pins", async () => {
  const store = memoryStore();
  const a = email("alice");
  const b = email("bob");
  const c = email("carol");
  const tab1 = client(server, { store });
  await tab1.register(a, "alice password");
  await client(server).register(b, "bob password");
  await client(server).register(c, "carol password");
  const tab2 = client(server, { store });
  await tab2.resume();
  await tab1.resume(); // tab1 rotates the refresh token; tab2 still holds the one before in memory
  await tab1.contacts.lookup(c);
  await tab2.contacts.lookup(b); // tab2 writes its pins
  await tab1.resume(); // refreshes with whatever the store holds now
  assert.equal((await tab1.sessions()).length, 1);
  const stored = JSON.parse(
    new TextDecoder().decode(await store.load(server.url, tab1.account().userId)),
  );
  const pinned = Object.values(stored.contacts)
    .map((r) => r.email)
    .sort();
  assert.deepEqual(pinned, [b, c].sort());
});

test("a key rotated in one tab is used by the other tab sharing its store, for opening and for sending", async () => {
  const store = memoryStore();
  const a = email("alice");
  const b = email("bob");
  const tab1 = client(server, { store });
  await tab1.register(a, "alice password");
  const bob = client(server);
  await bob.register(b, "bob password");
  const tab2 = client(server, { store });
  await tab2.resume();
  await tab1.rotateKeys("alice password");
  await bob.contacts.lookup(a).catch(() => undefined);
  await bob.contacts.trust(a);
  // tab2 resumed with key 1 only: it sends with key 2 after taking it in from the store.
  await tab2.messages.send(b, "from tab 2");
  const got = (await bob.messages.list()).messages.filter((m) => !m.message?.outgoing);
  assert.equal(got.at(-1).entry.senderKeyVersion, 2);
  assert.equal(got.at(-1).message.text, "from tab 2");
  // And opens what is sealed to key 2.
  await bob.messages.send(a, "to alice's key 2");
  const mine = (await tab2.messages.list()).messages.filter((m) => !m.message?.outgoing);
  assert.equal(mine.at(-1).entry.keyVersion, 2);
  assert.equal(mine.at(-1).message?.text, "to alice's key 2");
});
