// Telling a PostgreSQL URL from a SQLite path, and showing a URL without its password; no driver loaded.

/** True for a URL openPostgresStore takes (`postgres://` or `postgresql://`). */
export function isPostgresUrl(value: string): boolean {
  return /^postgres(?:ql)?:\/\//i.test(value);
}

/**
 * The URL with any password replaced by `***`, for logs and messages.
 *
 * @example redactDatabaseUrl('postgres://relay:s3cret@db/sb') // 'postgres://relay:***@db/sb'
 */
export function redactDatabaseUrl(url: string): string {
  let out = url;
  const start = out.indexOf('://');
  // The user part ends at the last '@' before any query: a password may hold '@' or '/'.
  const query = out.search(/[?#]/);
  const at = out.lastIndexOf('@', query < 0 ? out.length : query);
  if (start >= 0 && at > start) {
    const userinfo = out.slice(start + 3, at);
    const colon = userinfo.indexOf(':');
    if (colon >= 0)
      out = `${out.slice(0, start + 3)}${userinfo.slice(0, colon)}:***${out.slice(at)}`;
  }
  return out.replace(/([?&]password=)[^&#]*/gi, '$1***');
}
