/**
 * Patches sent through the shell, as models trained on Codex often send them:
 *
 *   ["apply_patch", "*** Begin Patch\n…"]
 *   ["bash", "-lc", "apply_patch <<'EOF'\n*** Begin Patch\n…\n*** End Patch\nEOF\n"]
 *   ["bash", "-lc", "cd src && apply_patch <<'EOF'\n…\nEOF"]
 *
 * Such a call is run as the apply_patch tool (same policy, approval and output). Only a command
 * that is exactly one of these shapes counts: anything more in the script (another command after
 * the heredoc, a pipe, a second heredoc) leaves it a shell command, so nothing can hide behind a
 * patch. Pure: the workflow decides approval with it.
 */

export interface ShellPatch {
  /** The patch text, from "*** Begin Patch" to "*** End Patch". */
  patch: string;
  /** Workspace-relative directory the patch's paths start from (`workdir`, then `cd`). */
  workdir?: string;
}

const PATCH_COMMANDS = new Set(['apply_patch', 'applypatch']);
const SHELLS = new Set([
  'bash',
  'sh',
  'zsh',
  '/bin/bash',
  '/bin/sh',
  '/usr/bin/bash',
  '/bin/zsh',
  '/usr/bin/zsh',
]);
const SHELL_FLAGS = new Set(['-c', '-lc']);

/** `cd DIR && ` before the command: DIR bare or in single or double quotes, without expansions. */
const CD_PREFIX = /^cd[ \t]+(?:'([^']*)'|"([^"$`\\]*)"|([^\s'"$`\\;&|<>()]+))[ \t]*&&[ \t]*/;
/** The heredoc opening: `apply_patch <<'EOF'`, `<<"EOF"` or `<<EOF`, then the end of that line. */
const HEREDOC =
  /^(apply_patch|applypatch)[ \t]*<<[ \t]*(?:'([A-Za-z_][A-Za-z0-9_]*)'|"([A-Za-z_][A-Za-z0-9_]*)"|([A-Za-z_][A-Za-z0-9_]*))[ \t]*\n/;

function looksLikePatch(text: string): boolean {
  return text.trimStart().startsWith('*** Begin Patch');
}

export function joinDir(base: string | undefined, dir: string | undefined): string | undefined {
  if (dir === undefined || dir === '' || dir === '.') return base;
  if (dir.startsWith('/') || base === undefined || base === '' || base === '.') return dir;
  return `${base.replace(/\/+$/, '')}/${dir}`;
}

/** The heredoc script's patch, when the script is nothing but `[cd DIR &&] apply_patch <<EOF … EOF`. */
function fromScript(script: string): { patch: string; cd?: string } | undefined {
  let rest = script.replace(/^\s+/, '');
  let cd: string | undefined;
  const prefix = CD_PREFIX.exec(rest);
  if (prefix) {
    cd = prefix[1] ?? prefix[2] ?? prefix[3];
    rest = rest.slice(prefix[0].length);
  }
  const opening = HEREDOC.exec(rest);
  if (!opening) return undefined;
  const delimiter = opening[2] ?? opening[3] ?? opening[4]!;
  const lines = rest.slice(opening[0].length).split('\n');
  const close = lines.indexOf(delimiter);
  if (close === -1) return undefined;
  // Nothing may follow the heredoc but blank lines.
  if (lines.slice(close + 1).some((line) => line.trim() !== '')) return undefined;
  const patch = lines.slice(0, close).join('\n');
  if (!looksLikePatch(patch)) return undefined;
  return cd === undefined ? { patch } : { patch, cd };
}

/** The patch a shell call carries, when the call is nothing but applying it. */
export function patchFromCommand(command: readonly string[], workdir?: string): ShellPatch | undefined {
  const withDir = (patch: string, cd?: string): ShellPatch => {
    const dir = joinDir(workdir, cd);
    return dir === undefined ? { patch } : { patch, workdir: dir };
  };
  if (command.length === 2 && PATCH_COMMANDS.has(command[0]!) && looksLikePatch(command[1]!)) {
    return withDir(command[1]!);
  }
  if (command.length === 3 && SHELLS.has(command[0]!) && SHELL_FLAGS.has(command[1]!)) {
    const found = fromScript(command[2]!);
    return found && withDir(found.patch, found.cd);
  }
  return undefined;
}
