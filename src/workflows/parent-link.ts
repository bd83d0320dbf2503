/**
 * A child session's side of fan-out: it reports each change of its status to its parent.
 */
import { getExternalWorkflowHandle, isCancellation, log } from '@temporalio/workflow';
import type { AgentReport } from '../shared/api/session-api.js';
import { agentReportSignal } from '../shared/api/session-api.js';
import type { SessionConfig } from '../shared/api/session-config.js';
import { rootMessage } from '../shared/boundary/failures.js';

/**
 * A child session's link to its parent: each change of status is reported (a signal to the
 * parent's id, which reaches whichever run of the parent is current). A parent that is gone
 * makes the report fail; the child carries on.
 */
export class ParentLink {
  private last = '';
  private readonly sent: Promise<void>[] = [];

  constructor(private readonly parent: NonNullable<SessionConfig['parent']>) {}

  get parentId(): string {
    return this.parent.id;
  }

  report(report: Omit<AgentReport, 'name'>): void {
    // With a budget, what the subtree spent is news too (the root counts it).
    const key = `${report.status}:${report.pending ?? 0}${report.tokens === undefined ? '' : `:${report.tokens}`}`;
    if (key === this.last && report.status !== 'completed') return;
    this.last = key;
    this.sent.push(
      getExternalWorkflowHandle(this.parent.id)
        .signal(agentReportSignal, { ...report, name: this.parent.name })
        .catch((err: unknown) => {
          if (isCancellation(err)) return;
          log.info('could not report to the parent session', {
            parent: this.parent.id,
            detail: rootMessage(err),
          });
        }),
    );
  }

  async flush(): Promise<void> {
    await Promise.all(this.sent);
  }
}
