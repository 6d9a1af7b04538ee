// Entry point of the browser build: src/crypto/ and the terminal's protocol codecs (scripts/build-browser.mjs bundles it with @noble/*; no node:* inside).
export { fromBase64, fromHex, toBase64, toHex, utf8 } from './bytes.js';
export { ControllerHandshake, HostHandshake, handshakeStep } from './handshake.js';
export { SecureChannel } from './secure-channel.js';
export { decodeData, encodeData } from '../protocol/codec.js';
export { decodeTerminal, encodeTerminal } from '../protocol/terminal.js';
export { generateSessionId } from '../protocol/session-id.js';
export { CryptoError, ErrorCode } from '../protocol/errors.js';
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
