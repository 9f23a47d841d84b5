// What a call ends with: "ok", or the code of the SealpostError it throws (anything else fails the test).
import assert from "node:assert/strict";
import { SealpostError } from "../../dist/protocol/index.js";

export function code(fn) {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof SealpostError, `not a SealpostError: ${e}`);
    return e.code;
  }
  return "ok";
}

export async function codeOf(promise) {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof SealpostError, `not a SealpostError: ${e?.stack ?? e}`);
    return e.code;
  }
  return "ok";
}

/** The SealpostError a promise rejects with (fails the test if it resolves). */
export async function errorOf(promise) {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof SealpostError, `not a SealpostError: ${e?.stack ?? e}`);
    return e;
  }
  assert.fail("expected a SealpostError, but the call succeeded");
}
