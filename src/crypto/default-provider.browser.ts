// The browser build's default CryptoProvider (@noble); scripts/build-browser.mjs puts it in place of default-provider.ts.
export { nobleCryptoProvider as defaultCryptoProvider } from './noble-provider.js';
