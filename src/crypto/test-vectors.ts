// Known-answer vectors every CryptoProvider must reproduce, under Node and in the browser (hex unless noted).
//
// Sources: RFC 8032 section 7.1 (Ed25519 tests 1-3), RFC 7748 sections 5.2 and 6.1 (X25519),
// the GCM specification's test cases 13-16 (McGrew and Viega; AES-256, also in NIST's GCM
// validation set), RFC 5869 A.1 (HKDF-SHA256), RFC 4231 test case 2 (HMAC-SHA256), FIPS 180-2
// B.1 (SHA-256 "abc"). The `switchboard` vectors pin this project's own constructions
// (prekeys.ts) from fixed keys; they were computed once with nodeCryptoProvider and are
// reproduced independently by nobleCryptoProvider.

export const ED25519_VECTORS = [
  {
    name: 'RFC 8032 7.1 test 1',
    seed: '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60',
    publicKey: 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a',
    message: '',
    signature:
      'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b',
  },
  {
    name: 'RFC 8032 7.1 test 2',
    seed: '4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb',
    publicKey: '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c',
    message: '72',
    signature:
      '92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00',
  },
  {
    name: 'RFC 8032 7.1 test 3',
    seed: 'c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7',
    publicKey: 'fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025',
    message: 'af82',
    signature:
      '6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a',
  },
] as const;

export const X25519_VECTORS = [
  {
    name: 'RFC 7748 5.2 vector 1',
    privateKey: 'a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4',
    peerPublicKey: 'e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c',
    shared: 'c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552',
  },
  {
    name: 'RFC 7748 5.2 vector 2',
    privateKey: '4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d',
    peerPublicKey: 'e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493',
    shared: '95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957',
  },
] as const;

/** RFC 7748 6.1: both public keys and the shared secret from either side. */
export const X25519_DH_VECTOR = {
  name: 'RFC 7748 6.1 Alice and Bob',
  alicePrivate: '77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a',
  alicePublic: '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a',
  bobPrivate: '5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb',
  bobPublic: 'de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f',
  shared: '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742',
} as const;

const GCM_KEY = 'feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308';
const GCM_NONCE = 'cafebabefacedbaddecaf888';
const GCM_PLAIN_60 =
  'd9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39';
const GCM_CIPHER_60 =
  '522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662';

/** AES-256-GCM; `sealed` is ciphertext || tag. */
export const AES_GCM_VECTORS = [
  {
    name: 'GCM test case 13 (empty)',
    key: '00'.repeat(32),
    nonce: '00'.repeat(12),
    aad: '',
    plaintext: '',
    sealed: '530f8afbc74536b9a963b4f1c4cb738b',
  },
  {
    name: 'GCM test case 14',
    key: '00'.repeat(32),
    nonce: '00'.repeat(12),
    aad: '',
    plaintext: '00'.repeat(16),
    sealed: 'cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919',
  },
  {
    name: 'GCM test case 15',
    key: GCM_KEY,
    nonce: GCM_NONCE,
    aad: '',
    plaintext: `${GCM_PLAIN_60}1aafd255`,
    sealed: `${GCM_CIPHER_60}898015adb094dac5d93471bdec1a502270e3cc6c`,
  },
  {
    name: 'GCM test case 16 (with AAD)',
    key: GCM_KEY,
    nonce: GCM_NONCE,
    aad: 'feedfacedeadbeeffeedfacedeadbeefabaddad2',
    plaintext: GCM_PLAIN_60,
    sealed: `${GCM_CIPHER_60}76fc6ece0f4e1768cddf8853bb2d551b`,
  },
] as const;

export const HKDF_VECTOR = {
  name: 'RFC 5869 A.1',
  ikm: '0b'.repeat(22),
  salt: '000102030405060708090a0b0c',
  info: 'f0f1f2f3f4f5f6f7f8f9',
  length: 42,
  okm: '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865',
} as const;

export const HMAC_VECTOR = {
  name: 'RFC 4231 test case 2',
  key: '4a656665', // "Jefe"
  data: '7768617420646f2079612077616e7420666f72206e6f7468696e673f', // "what do ya want for nothing?"
  mac: '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843',
} as const;

export const SHA256_VECTOR = {
  name: 'FIPS 180-2 B.1 "abc"',
  data: '616263',
  digest: 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
} as const;

/**
 * Switchboard's prekey constructions from fixed keys: device A sends an offline message to
 * device B, whose bundle carries signed prekey 7. Base64 where the wire uses base64.
 */
export const SWITCHBOARD_VECTOR = {
  name: 'switchboard prekey bundle and offline agreement v1',
  senderDeviceSeed: '11'.repeat(32),
  senderIdentityPrivate: '22'.repeat(32),
  recipientDeviceSeed: '33'.repeat(32),
  recipientIdentityPrivate: '44'.repeat(32),
  prekeyPrivate: '55'.repeat(32),
  prekeyId: 7,
  prekeyCreatedAt: 1_700_000_000_000, // ms since the epoch
  prekeyLifetime: 7 * 24 * 60 * 60 * 1000, // ms
  ephemeralPrivate: '66'.repeat(32),
  bundle: {
    v: 1,
    deviceKey: 'F8t5+ytBIPKx7GXkGY1uCLKOgT/rAeSkAIObheGAgM4=',
    identityKey: '/y7kVgHsG2cxDHeQQEWFrmlzMe7hwfjPJBlzHB//Pms=',
    identitySignature:
      'a6MXERpRNbSDtUvHTntT+xCnten3VnHlS/1DoeuGVrfPZUNrr2cf4RzCMn96JMVEvy1Rqqy5beUN6f/d3mPOBg==',
    prekey: {
      id: 7,
      publicKey: 'OKtmS9hvd9fma92a4HkpE6lP2LM6EmACfktGwfSITGc=',
      createdAt: 1_700_000_000_000,
      expiresAt: 1_700_604_800_000,
      signature:
        'w0ps2ejd6+P596fliFmvS+2u7OBWXKuDGPGmoZc4ugpyz7OUKAe/r7a8RXyapjqd9o/zq8vXAHwj5WF7gHCuBw==',
    },
  },
  header: {
    v: 1,
    senderDeviceKey: '0EqyMnQrtKs6E2i9RhXk5tAiSrcaAWuvhSCjMsl3hzc=',
    senderIdentityKey: 'D6poTtKIZ7l/Smot7l34zpdOdrcBjj8iocTPJnhXDyA=',
    senderIdentitySignature:
      'Ca4Z+xg8piz1+iWTG0j54FyCdmoRk+PRAz8nlVRVYWxBgF/wPqtrn4vudoqLE85rjkNND+U0apwVKS6UFmOVDQ==',
    recipientDeviceKey: 'F8t5+ytBIPKx7GXkGY1uCLKOgT/rAeSkAIObheGAgM4=',
    prekeyId: 7,
    ephemeralKey: 'IZ5NgA2paNKl/LAJx4T0dGxxOO257khEtznoMLBc9CQ=',
  },
  secret: 'b0267e4bc01e5d5f3cd23dc611fff34250543e7a7c9f2d65c8268e4801a2c786',
} as const;

/**
 * The E2E record layer (secure-channel.ts, docs/protocol.md "Record layer"): records 0 and 1
 * sealed under a fixed key, computed once from the documented format with node:crypto directly
 * (u64be seq || AES-256-GCM(nonce = 0^4 || seq, aad = seq)).
 */
export const RECORD_VECTOR = {
  name: 'switchboard record v1',
  sendKey: '77'.repeat(32),
  receiveKey: '88'.repeat(32),
  plaintexts: ['6c730a', ''], // "ls\n", then an empty record
  records: [
    '0000000000000000707ebdc250a448e757b1daafd9fe8a340a6bbd',
    '0000000000000001d2abccb03a48acb50b494a27fb1f6c41',
  ],
} as const;
