// The key under which per-address limits count a client: the IPv4 address, or the IPv6 /64.
import { isIPv6 } from 'node:net';

/**
 * The unit per-address limits (connection caps, sign-up buckets, login throttles) count by. An
 * IPv4 address (IPv4-mapped IPv6 folded to it) is its own key; an IPv6 address counts by its
 * /64, since one host is routinely given a whole /64 and could otherwise take a fresh address
 * for every attempt.
 *
 * @example addressKey('2001:db8:1:2:a:b:c:d') // '2001:db8:1:2::/64'
 */
export function addressKey(address: string): string {
  if (address.startsWith('::ffff:') && address.includes('.')) return address.slice(7);
  if (!isIPv6(address)) return address;
  const [head = '', tail = ''] = address.split('%')[0]!.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  // An embedded IPv4 tail (::1.2.3.4) takes two groups; only the first four groups matter here.
  const fill = Math.max(0, 8 - left.length - right.length);
  const groups = address.includes('::')
    ? [...left, ...Array<string>(fill).fill('0'), ...right]
    : left;
  const prefix = groups
    .slice(0, 4)
    .map((g) => (parseInt(g, 16) || 0).toString(16))
    .join(':');
  return `${prefix}::/64`;
}
