/**
 * Parsers for option values: each returns the typed value or throws commander's
 * InvalidArgumentError, which commander turns into one usage line and exit code 1.
 */
import { InvalidArgumentError } from 'commander';
import type { ApprovalPolicy } from '../shared/policy/policy.js';
import { approvalPolicies } from '../shared/policy/policy.js';
import type { SessionStatus } from '../shared/api/session-api.js';
import { sessionStatuses } from '../shared/api/session-api.js';
import type { SandboxMode } from '../shared/policy/sandbox.js';
import { sandboxModes } from '../shared/policy/sandbox.js';

function oneOf<T extends string>(allowed: readonly T[], value: string): T {
  if (!(allowed as readonly string[]).includes(value)) {
    throw new InvalidArgumentError(`expected one of ${allowed.join(', ')}`);
  }
  return value as T;
}

export function parsePolicy(value: string): ApprovalPolicy {
  return oneOf(approvalPolicies, value);
}

export function parseSandbox(value: string): SandboxMode {
  return oneOf(sandboxModes, value);
}

export function parseStatus(value: string): SessionStatus {
  return oneOf(sessionStatuses, value);
}

export function parseCount(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('expected a whole number, 0 or more');
  return n;
}

export function parsePositiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('expected a positive whole number');
  return n;
}

/** A turn number: 0 (the workspace as the session found it) or more. */
export function parseTurn(value: string): number {
  if (!/^\d+$/.test(value.trim())) throw new InvalidArgumentError('expected a turn number (0 or more)');
  return Number(value);
}
