// Pinned device keys of other users, kept in the CLI's known_peers file (peer-pins.ts has the rules).
import { existsSync, readFileSync } from 'node:fs';
import { writeFileAtomic } from './atomic-file.js';
import { ErrorCode, SwitchboardError } from '../protocol/errors.js';
import { PeerPins, type PinFile } from './peer-pins.js';

export {
  PinError,
  type NewDevicePolicy,
  type PinCheck,
  type PinPeer,
  type PinnedKey,
} from './peer-pins.js';

/** The pins in a JSON file (mode 0600, written atomically). */
export class KnownPeers extends PeerPins {
  readonly file: string;
  constructor(file: string) {
    super({ read: () => readPins(file), write: (pins) => writePins(file, pins) });
    this.file = file;
  }
}

function readPins(file: string): PinFile {
  if (!existsSync(file)) return {};
  try {
    const data = JSON.parse(readFileSync(file, 'utf8')) as unknown;
    if (typeof data !== 'object' || data === null || Array.isArray(data))
      throw new Error('not an object');
    return data as PinFile;
  } catch {
    throw new SwitchboardError(
      ErrorCode.INTERNAL,
      `${file} is not valid JSON; fix or delete it (you will re-pin peers on next contact)`,
    );
  }
}

function writePins(file: string, pins: PinFile): void {
  writeFileAtomic(file, `${JSON.stringify(pins, null, 2)}\n`, 0o600);
}
