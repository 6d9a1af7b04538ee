// Which addresses are this machine's loopback: where plaintext may go without `--insecure`.

/** The IPv4 loopback block, 127.0.0.0/8, as dotted-quad text. */
const IPV4_LOOPBACK = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/**
 * True for `localhost`, any 127.0.0.0/8 address, `::1` (in any spelling) and IPv4-mapped
 * 127.x addresses; brackets around IPv6 are ignored. A name other than `localhost` is never
 * loopback here: what it resolves to is not known before connecting (check the peer's address
 * after connecting too, as `localhost` itself may be mapped elsewhere).
 *
 * @example isLoopbackHost('127.0.0.1') // true
 * @example isLoopbackHost('[::1]') // true
 * @example isLoopbackHost('10.0.0.5') // false
 */
export function isLoopbackHost(host: string): boolean {
  const h = host
    .trim()
    .toLowerCase()
    .replace(/^\[(.*)\]$/, '$1');
  if (h === 'localhost') return true;
  if (!h.includes(':')) return isIpv4Loopback(h);
  const mapped = /^(.*:)(\d{1,3}(?:\.\d{1,3}){3})$/.exec(h);
  if (mapped) {
    // ::ffff:127.0.0.1 (IPv4-mapped): loopback when its IPv4 part is.
    const groups = ipv6Groups(`${mapped[1]}0:0`);
    return (
      groups !== undefined &&
      groups.slice(0, 5).every((g) => g === 0) &&
      groups[5] === 0xffff &&
      isIpv4Loopback(mapped[2]!)
    );
  }
  const groups = ipv6Groups(h);
  return groups !== undefined && groups.slice(0, 7).every((g) => g === 0) && groups[7] === 1;
}

function isIpv4Loopback(h: string): boolean {
  const m = IPV4_LOOPBACK.exec(h);
  return m !== null && m.slice(1).every((octet) => Number(octet) <= 255);
}

/** The eight 16-bit groups of an IPv6 address in text (no zone, no IPv4 tail), or undefined. */
function ipv6Groups(h: string): number[] | undefined {
  const halves = h.split('::');
  if (halves.length > 2) return undefined;
  const parse = (part: string) => (part === '' ? [] : part.split(':'));
  const head = parse(halves[0]!);
  const tail = halves.length === 2 ? parse(halves[1]!) : [];
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const all = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...tail];
  if (!all.every((g) => /^[0-9a-f]{1,4}$/.test(g))) return undefined;
  return all.map((g) => parseInt(g, 16));
}
