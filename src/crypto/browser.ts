// Entry point of the browser build of src/crypto/ (scripts/build-browser.mjs bundles it with @noble/*; no node:* inside).
export { fromBase64, fromHex, toBase64, toHex, utf8 } from './bytes.js';
export { nobleCryptoProvider } from './noble-provider.js';
export {
  createIdentityKey,
  createSignedPrekey,
  encodeBundle,
  offlineAgree,
  offlineReceive,
  PrekeyError,
  seedSigner,
  verifyBundle,
} from './prekeys.js';
export type { CryptoProvider } from './provider.js';
export { VECTOR_CHECK_COUNT, checkVectors } from './vector-check.js';
