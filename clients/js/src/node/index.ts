/** `@sealpost/sdk/node`: what only Node has, the file KeyStore. */
export { fileStore, type FileStoreOptions } from "./file-store.js";
