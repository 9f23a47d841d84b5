/** `@sealpost/sdk`: the Sealpost client for browsers and Node (PROTOCOL 1.1). */
export { SealpostError, isSealpostError, type ErrorCode, type TrustDetails } from "./errors.js";
