// The repository root (where bin/switchboard lives), found from a compiled bench file's location.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export function findRoot(from: string = import.meta.url): string {
  let dir = dirname(fileURLToPath(from));
  while (!existsSync(join(dir, 'bin', 'switchboard'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find bin/switchboard');
    dir = up;
  }
  return dir;
}
