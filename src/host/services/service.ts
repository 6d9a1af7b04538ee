// What a host-side service is: a module the host hands each channel opened for its name.
import type { SecureDuplex } from '../../channel/e2e.js';
import type { PeerInfo } from '../../protocol/messages.js';
import type { AccessDecision } from '../access.js';
import type { HostSession } from '../host-session.js';

/** Everything a service gets for one channel, once the end-to-end handshake is done. */
export interface ServiceContext {
  /** The session the channel came through; absent for channels aimed at a user or device. */
  host?: HostSession;
  /** Sealed messages to and from the peer; the service sets its handlers at once. */
  channel: SecureDuplex;
  /** The peer the handshake proved (and the pins confirmed). */
  peer: PeerInfo;
  /** The relay's grant: the peer asked to only watch, or is only a viewer. */
  readOnly: boolean;
  /** The host's own decision for this peer (access.ts); the relay's grant is never enough. */
  access: AccessDecision;
  /**
   * A device of a user with pins, not pinned yet (the host's policy left it to the service): the
   * terminal asks the host, and pins it if the host lets it in.
   */
  newDevice: boolean;
}

/** A service served on channels into a session (`terminal`, `ping`, later `exec`, `push`...). */
export interface HostService {
  /** The name controllers ask for in `channel.open` (SERVICE_RE). */
  readonly name: string;
  /**
   * The service makes its own access decision (exec and push, under the agent's policy): a peer
   * the host's access rule denies still reaches it, and it refuses what the policy does not grant.
   */
  readonly decidesAccess?: boolean;
  /** The host stops: end what still runs (and record it) before the connection goes. */
  stop?(): Promise<void>;
  /** Takes over one channel: sets its handlers, answers, closes it when done. */
  serve(ctx: ServiceContext): void;
}
