// The recovery-key checks both vector sets share: text, lenient reading, typos, the derived keys.
import assert from "node:assert/strict";
import * as p from "../../dist/protocol/index.js";
import { code } from "./codes.mjs";

/** Checks one recovery vector; `lenient` is the vector's lowercase text, `typos` its mistyped texts. */
export function checkRecoveryVector(r, lenient, typos) {
  const key = p.fromBase64(r.recovery_key);
  assert.equal(p.recoveryKeyText(key), r.text);
  assert.deepEqual(p.parseRecoveryKey(r.text), key);
  assert.deepEqual(p.parseRecoveryKey(lenient), key);
  assert.ok(typos.length > 0);
  for (const t of typos)
    assert.equal(
      code(() => p.parseRecoveryKey(t)),
      "recovery_key_typo",
      t,
    );
  const keys = p.recoveryKeys(key);
  assert.equal(p.toBase64(keys.wrapKey), r.recovery_wrap_key);
  assert.equal(p.toBase64(keys.authKey), r.recovery_auth_key);
  return keys;
}
