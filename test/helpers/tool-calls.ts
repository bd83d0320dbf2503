/**
 * Running a tool activity by hand, as a worker would: the input the workflow sends for one call,
 * and an activity context (attempt, queue, run) to run it in.
 */
import type { Info } from '@temporalio/activity';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import type { ToolCallInput } from '../../src/shared/boundary/activity-types.js';

/** The input of call `call_1` of session `s` with these arguments (and any other field given). */
export function toolCall(
  workspace: string,
  args: unknown,
  extra: Partial<ToolCallInput> = {},
): ToolCallInput {
  return {
    sessionId: 's',
    epoch: 0,
    workspace,
    callId: 'call_1',
    itemIndex: 0,
    arguments: JSON.stringify(args),
    ...extra,
  };
}

/** An activity context that logs only errors; `info` sets the attempt, the queue, the run. */
export function activityContext(info: Partial<Info> = {}): MockActivityEnvironment {
  return new MockActivityEnvironment(info, { logger: new DefaultLogger('ERROR') });
}
