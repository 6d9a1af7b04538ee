// Command-line flags of the benchmark scripts: whole numbers within a range, or a clear error.

/** `text` as an integer from `min` to `max`; throws naming `--name` otherwise. */
export function intFlag(name: string, text: string, min: number, max: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new Error(`--${name} must be an integer from ${min} to ${max}`);
  return n;
}
