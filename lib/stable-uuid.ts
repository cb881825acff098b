import { createHash } from 'node:crypto';

/** A stable UUID derived from a string (for ids that must be the same on every retry). */
export function stableUuid(seed: string, version: 5 | 8 = 5): string {
  const h = createHash('sha256').update(seed).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${version}${h.slice(13, 16)}-${((parseInt(h[16]!, 16) & 3) | 8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}
