// The CryptoProvider used when a caller passes none: node:crypto in Node. The browser build swaps this module for default-provider.browser.ts.
//
// handshake.ts and secure-channel.ts import their default from here and nothing else that is
// platform specific, so they run unchanged in both places: scripts/build-browser.mjs resolves
// this file to default-provider.browser.ts (@noble), and fails the build if any node:* module
// is still reached.
export { nodeCryptoProvider as defaultCryptoProvider } from './node-provider.js';
