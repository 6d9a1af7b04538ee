// The host's own access decision: who may attach, and whether they may type.

export interface AccessPolicy {
  owner: string;
  kind: 'share' | 'agent';
  allow: readonly string[];
  viewers: readonly string[];
}

/** 'rw' and 'ro' admit; 'ask' means the person at the host decides (share only); 'deny' refuses. */
export type AccessDecision = 'rw' | 'ro' | 'ask' | 'deny';

export function decideAccess(
  policy: AccessPolicy,
  user: string,
  requestedReadOnly: boolean,
): AccessDecision {
  let decision: AccessDecision;
  if (user === policy.owner || policy.allow.includes(user)) decision = 'rw';
  else if (policy.viewers.includes(user)) decision = 'ro';
  else decision = policy.kind === 'share' ? 'ask' : 'deny';
  if (decision === 'rw' && requestedReadOnly) return 'ro';
  return decision;
}
