/** `ratchet status`: one session's state, its plan, its pending calls and its child sessions. */
import type { Command } from 'commander';
import pc from 'picocolors';
import { escapeControl } from '../../shared/util/escape.js';
import type { Io } from '../io.js';
import { json, print, withClient } from '../io.js';
import { renderAgentLine, statusColor } from '../render.js';

export function registerStatus(program: Command, io: Io): void {
  program
    .command('status')
    .description("show a session's status")
    .argument('<id>', 'session id')
    .option('--json', 'machine-readable output')
    .action(async (id: string, opts: { json?: boolean }) =>
      withClient(async (ratchet) => {
        const view = await ratchet.status(id);
        if (opts.json) return json(io, view);
        print(io, `${pc.bold(id)}  ${statusColor(view.status)(view.status)}`);
        print(io, `task       ${escapeControl(view.task)}`);
        print(io, `repository ${view.workspace}`);
        print(io, `model      ${view.model} · policy ${view.approvalPolicy}`);
        print(io, `sandbox    ${view.sandbox}`);
        print(io, `turn       ${view.turn} · runs ${view.runs} · compactions ${view.compactions}`);
        print(
          io,
          `tokens     ${view.usage.inputTokens} in (${view.usage.cachedInputTokens} cached) · ${view.usage.outputTokens} out`,
        );
        if (view.current) print(io, `now        ${escapeControl(view.current.label)}`);
        if (view.notice) print(io, `notice     ${escapeControl(view.notice)}`);
        for (const step of view.plan)
          print(
            io,
            `plan       [${step.status === 'completed' ? 'x' : step.status === 'in_progress' ? '>' : ' '}] ${escapeControl(step.step)}`,
          );
        for (const p of view.pendingApprovals)
          print(io, pc.yellow(escapeControl(`pending    ${p.callId} · ${p.summary} · ${p.reason}`)));
        if (view.parent) print(io, `parent     ${view.parent}`);
        if (view.budget)
          print(
            io,
            `budget     ${view.budget.spent} of ${view.budget.limit} tokens${view.budget.parked ? pc.yellow(` · parked: ratchet budget ${id} --add N, or --stop`) : ''}`,
          );
        if (view.agents?.length || view.agentsRetired) {
          const retired = view.agentsRetired ? ` (and ${view.agentsRetired} merged and retired)` : '';
          print(io, `agents     ${view.agents?.length ?? 0}${retired}`);
          for (const agent of view.agents ?? [])
            print(io, `  ${renderAgentLine(agent, pc)}  ${pc.dim(agent.sessionId)}`);
          // Calls waiting anywhere below: `ratchet approve ${id}` decides them.
          const below = (await ratchet.treeApprovals(id)).filter((p) => p.sessionId !== id);
          for (const p of below)
            print(
              io,
              pc.yellow(
                escapeControl(`pending    ${p.approval.callId} · ${p.sessionId} · ${p.approval.summary}`),
              ),
            );
        }
        if (view.lastMessage) print(io, `last message\n${escapeControl(view.lastMessage)}`);
        const uiUrl = ratchet.uiUrl(id);
        if (uiUrl) print(io, pc.dim(uiUrl));
      }),
    );
}
