/** The ids the client gives: a new session's workflow id, and an approval decision's update id. */
import { randomBytes } from 'node:crypto';
import type { ApprovalDecisionKind } from './shared/api/session-api.js';

function slug(text: string): string {
  return (
    text
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .split('-')
      .slice(0, 6)
      .join('-')
      .slice(0, 40) || 'session'
  );
}

/** One update id per call and decision, so that repeating a decision is idempotent. */
export function decisionUpdateId(callId: string, decision: ApprovalDecisionKind): string {
  return `decide:${callId}:${decision}`;
}

export function newSessionId(task: string): string {
  return `ratchet-${slug(task)}-${randomBytes(4).toString('hex')}`;
}
