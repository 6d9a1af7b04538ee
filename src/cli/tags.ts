// `--tag KEY=VALUE`, as agent, sessions and exec take it.
import { MAX_TAGS, TAG_KEY_RE, TAG_VALUE_RE } from '../protocol/messages.js';
import { list, type Invocation } from './command.js';
import { UsageError } from './exit-codes.js';

export const TAG_OPTION = {
  tag: {
    type: 'string',
    multiple: true,
    value: 'KEY=VALUE',
    description: 'a tag (repeatable), e.g. --tag env=prod --tag role=web',
  },
} as const;

/**
 * `--tag KEY=VALUE`s as a record: a UsageError for a malformed one (or a key given twice with
 * different values, for `agent`).
 */
export function tagsOption(inv: Invocation): Record<string, string> {
  const tags: Record<string, string> = {};
  for (const text of list(inv, 'tag')) {
    const eq = text.indexOf('=');
    const key = eq < 0 ? text : text.slice(0, eq);
    const value = eq < 0 ? undefined : text.slice(eq + 1);
    if (value === undefined || !TAG_KEY_RE.test(key) || !TAG_VALUE_RE.test(value))
      throw new UsageError(
        `--tag ${text}: write KEY=VALUE, KEY a lower-case word (a-z, 0-9, _ . -), VALUE up to 64 of A-Z a-z 0-9 _ . : / @ + -`,
      );
    if (tags[key] !== undefined && tags[key] !== value)
      throw new UsageError(`--tag ${key} is given twice, with different values`);
    tags[key] = value;
  }
  if (Object.keys(tags).length > MAX_TAGS)
    throw new UsageError(`at most ${MAX_TAGS} --tag options`);
  return tags;
}
