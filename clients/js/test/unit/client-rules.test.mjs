// The client's pure rules: §7 transport checks, the §6 pins, and that createClient refuses plain HTTP off loopback.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createClient, memoryStore } from "../../dist/index.js";
import { checkServer, isLoopback } from "../../dist/http.js";
import * as pins from "../../dist/pins.js";
import { code, codeOf, errorOf } from "../support/codes.mjs";

test("transport: https anywhere, http only to loopback unless opted in", () => {
  assert.equal(checkServer("https://mail.example.com/x"), "https://mail.example.com");
  for (const ok of [
    "http://127.0.0.1:8080",
    "http://127.8.9.10",
    "http://localhost:1",
    "http://[::1]:80",
  ])
    assert.equal(
      code(() => checkServer(ok)),
      "ok",
      ok,
    );
  for (const bad of [
    "http://192.0.2.1",
    "http://example.com",
    "http://127.0.0.1.example.com",
    "ftp://127.0.0.1",
    "ws://localhost",
  ]) {
    assert.equal(
      code(() => checkServer(bad)),
      bad.startsWith("http:") ? "insecure_transport" : "insecure_transport",
      bad,
    );
  }
  assert.equal(
    code(() => checkServer("http://192.0.2.1", true)),
    "ok",
  );
  assert.equal(
    code(() => checkServer("not a url")),
    "invalid_input",
  );
  assert.ok(isLoopback("[::1]") && !isLoopback("::2"));
  assert.equal(
    code(() => createClient({ server: "http://192.0.2.1:8080", store: memoryStore() })),
    "insecure_transport",
  );
});

const state = () => ({ contacts: {}, pendingEmails: {} });
const rec = (email, keys) => ({ email, keys, complete: true });

test("pins: an email stays bound to its first account until the change that was shown is trusted", () => {
  const s = state();
  s.contacts.u1 = rec("a@x", { 1: "k1" });
  assert.equal(pins.checkBinding(s, "a@x", "u1", "check"), undefined);
  assert.equal(pins.checkBinding(s, "b@x", "u2", "check"), undefined);
  assert.deepEqual(pins.checkBinding(s, "a@x", "u3", "trust"), {
    kind: "contact_changed",
    pinned: "u1",
  });
  assert.equal(s.pendingEmails["a@x"], "u3");
  assert.ok(pins.checkBinding(s, "a@x", "u4", "trust"));
  assert.equal(pins.checkBinding(s, "a@x", "u4", "trust"), undefined);
  pins.bind(s, "a@x", "u4");
  assert.equal(pins.boundTo(s, "a@x"), "u4");
  assert.equal(s.contacts.u1.claimedEmail, "a@x");
  assert.deepEqual(pins.checkBinding(s, "c@x", "u4", "check"), {
    kind: "contact_changed",
    pinned: undefined,
  });
});

test("pins: key lists must agree with the pins; newer keys are key changes, unlisted older ones forgeries", () => {
  const fresh = pins.newRecord();
  assert.equal(
    pins.pinList(
      fresh,
      [
        [1, "k1"],
        [2, "k2"],
      ],
      Infinity,
    ),
    undefined,
  );
  assert.deepEqual(fresh.keys, { 1: "k1", 2: "k2" });
  assert.deepEqual(
    pins.pinList(
      structuredClone(fresh),
      [
        [1, "evil"],
        [2, "k2"],
      ],
      Infinity,
    ),
    { kind: "forged", version: 1, reason: "pinned_key_changed" },
  );
  assert.deepEqual(pins.pinList(structuredClone(fresh), [[2, "k2"]], Infinity), {
    kind: "forged",
    version: 1,
    reason: "pinned_key_changed",
  });
  const gap = rec(undefined, { 1: "k1", 3: "k3" });
  assert.deepEqual(
    pins.pinList(
      gap,
      [
        [1, "k1"],
        [2, "k2"],
        [3, "k3"],
      ],
      3,
    ),
    { kind: "forged", version: 2, reason: "not_in_key_list" },
  );
  const r = rec(undefined, { 1: "k1", 2: "k2" });
  assert.deepEqual(pins.checkKey(r, [2, "k2"]), [2, "k2"]);
  assert.deepEqual(pins.checkKey(r, [1, "k1"]), [2, "k2"]);
  assert.equal(pins.checkKey(r, [2, "evil"]).kind, "forged");
  assert.deepEqual(pins.checkKey(r, [3, "k3"]), { kind: "key_changed", pinned: [2, "k2"] });
  assert.ok(pins.mayTrust(r, [3, "k3"]) && !pins.mayTrust(r, [3, "k1"]));
  assert.equal(pins.keyAt(r, 1), "k1");
  assert.equal(pins.keyAt(r, 4), undefined);
  assert.equal(pins.keyAt(gap, 2).kind, "forged");
  assert.equal(
    pins.pinList(
      r,
      [
        [1, "k1"],
        [2, "k2"],
        [3, "k3"],
      ],
      3,
    ),
    undefined,
  );
  assert.equal(r.pending, undefined);
});

test("every request has a timeout: a server that never answers is timeout, not a hang", async () => {
  const never = (_url, init) =>
    new Promise((_, reject) =>
      init.signal.addEventListener("abort", () => reject(init.signal.reason)),
    );
  const c = createClient({
    server: "http://127.0.0.1:9",
    store: memoryStore(),
    fetch: never,
    requestTimeoutMs: 100,
  });
  assert.equal(await codeOf(c.login("a@example.com", "pw")), "timeout");
  const refused = async () => {
    throw new TypeError("fetch failed");
  };
  const d = createClient({ server: "http://127.0.0.1:9", store: memoryStore(), fetch: refused });
  assert.equal(await codeOf(d.login("a@example.com", "pw")), "unreachable");
});

test("a server error keeps its code, field, status and Retry-After", async () => {
  const limited = async () =>
    new Response(
      JSON.stringify({ error: { code: "rate_limited", message: "slow down", field: "email" } }),
      {
        status: 429,
        headers: { "retry-after": "7" },
      },
    );
  const c = createClient({
    server: "https://mail.example.com",
    store: memoryStore(),
    fetch: limited,
  });
  const e = await errorOf(c.login("a@example.com", "pw"));
  assert.deepEqual(
    [e.code, e.field, e.status, e.retryAfter, e.message],
    ["rate_limited", "email", 429, 7, "slow down"],
  );
});
