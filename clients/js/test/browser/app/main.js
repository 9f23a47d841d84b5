// Runs in Chromium under the documented CSP: Alice and Bob register (Argon2id in the module Worker),
// talk over the browser's own WebSocket, Bob resumes from IndexedDB as after a reload, logs out
// (his database is deleted). The result is posted back to the test.
import { createClient, indexedDBStore } from "../../../dist/index.js";

const violations = [];
document.addEventListener("securitypolicyviolation", (e) =>
  violations.push(`${e.violatedDirective} ${e.blockedURI}`),
);

async function run() {
  const out = {};
  const tag = Math.random().toString(36).slice(2);
  const ea = `alice-${tag}@example.com`;
  const eb = `bob-${tag}@example.com`;
  const workers = [];
  const RealWorker = globalThis.Worker;
  globalThis.Worker = class extends RealWorker {
    constructor(url, options) {
      super(url, options);
      workers.push(String(url));
    }
  };
  const alice = createClient({ server: location.origin, store: indexedDBStore() });
  const bob = createClient({ server: location.origin, store: indexedDBStore() });
  await alice.register(ea, "alice password");
  const { recoveryKey } = await bob.register(eb, "bob password");
  out.recoveryKey = typeof recoveryKey === "string";
  out.workers = workers.length;
  const it = bob.messages.stream()[Symbol.asyncIterator]();
  await alice.messages.send(eb, "Hello from the browser");
  const r = (await it.next()).value;
  out.text = r.ok ? r.message.text : r.error.code;
  out.from = r.ok && r.message.fromEmail === ea;
  await it.return();
  const bobId = bob.account().userId;
  const ours = (await indexedDB.databases())
    .map((d) => d.name)
    .filter((n) => n.startsWith(`sealpost:${location.origin}#`));
  out.databases = ours.length;
  const reloaded = createClient({ server: location.origin, store: indexedDBStore() });
  out.resumed = (await reloaded.resume(bobId)).email === eb;
  out.listed = (await reloaded.messages.list()).messages.map((m) => m.message?.text);
  out.safety =
    (await reloaded.contacts.safetyNumber(ea)).pinned.safetyNumber ===
    (await alice.contacts.safetyNumber(eb)).pinned.safetyNumber;
  await reloaded.logout();
  out.bobDatabaseAfterLogout = (await indexedDB.databases()).some((d) => d.name.endsWith(bobId));
  out.violations = violations;
  return out;
}

run()
  .catch((e) => ({ error: `${e?.code ?? ""} ${e?.message ?? e}`, violations }))
  .then((out) => fetch("/result", { method: "POST", body: JSON.stringify(out) }));
