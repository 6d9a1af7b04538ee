// The relay's rules for a new password, shared by the relay (which enforces them) and the CLI
// (which checks before asking for the password a second time).

/**
 * Why `password` is refused for `user`, or undefined if it is fine. Without `minLength` (a relay
 * that did not say) the length is not checked; without `user`, the name is not.
 */
export function passwordProblem(
  user: string | undefined,
  password: string,
  minLength: number | undefined,
): string | undefined {
  if (minLength !== undefined && password.length < minLength)
    return `passwords need at least ${minLength} characters`;
  if (user !== undefined && password.toLowerCase() === user.toLowerCase())
    return 'the password must differ from the user name';
  return undefined;
}
