// Opens a plaintext TCP socket to a relay's `serve --plain-port`: loopback only, unless the caller says otherwise.
import { connect, type Socket } from 'node:net';
import { ConnectError, ErrorCode } from '../protocol/errors.js';
import { isLoopbackHost } from '../protocol/loopback.js';
import { CONNECT_TIMEOUT_MS, describeConnectError, type ServerAddress } from './tls-connect.js';

/**
 * The refusal of a plaintext address off this machine: TRUST_REQUIRED (exit 4), naming both
 * ways out. `resolved` is the address a name turned out to reach, when that is what failed.
 */
export function plaintextRefusal(address: ServerAddress, resolved?: string): ConnectError {
  const where = resolved === undefined ? '' : ` (it reached ${resolved})`;
  return new ConnectError(
    ErrorCode.TRUST_REQUIRED,
    `${address.label} is not loopback${where}: plaintext exposes your password and tokens; ` +
      `use HOST:PORT (TLS), or pass --insecure if a TLS-terminating proxy or a trusted network protects it`,
  );
}

/**
 * Resolves with a TCP socket to a plaintext listener. Without `insecure`, the address must be
 * loopback by its name (checked before anything is contacted) and by the peer it reached (a
 * `localhost` mapped elsewhere is refused too). There is no certificate, so nothing is pinned.
 *
 * @throws ConnectError TRUST_REQUIRED (not loopback) or CONNECT_FAILED.
 */
export async function connectPlain(
  address: ServerAddress,
  options: { insecure?: boolean } = {},
): Promise<Socket> {
  const insecure = options.insecure === true;
  if (!insecure && !isLoopbackHost(address.host)) throw plaintextRefusal(address);
  const socket = await new Promise<Socket>((resolve, reject) => {
    const s = connect({ host: address.host, port: address.port });
    const timer = setTimeout(() => {
      s.destroy();
      reject(
        new ConnectError(
          ErrorCode.CONNECT_FAILED,
          `no answer from ${address.label} within ${CONNECT_TIMEOUT_MS / 1000} s`,
        ),
      );
    }, CONNECT_TIMEOUT_MS);
    s.once('connect', () => {
      clearTimeout(timer);
      resolve(s);
    });
    s.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(describeConnectError(address, err));
    });
  });
  const peer = socket.remoteAddress ?? '';
  if (!insecure && !isLoopbackHost(peer)) {
    socket.destroy();
    throw plaintextRefusal(address, peer);
  }
  return socket;
}
