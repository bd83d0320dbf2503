/**
 * The inbox's stylesheet and its one script, served from /assets/ (the page's Content Security
 * Policy allows no inline script). The script keeps a page live: it listens to the page's event
 * stream and, when the session changes, fetches the page again and swaps in its live part, so a
 * reason being typed in the message box is not lost.
 */
export const INBOX_CSS = `
:root { color-scheme: light dark; --fg: #1d1d1f; --bg: #fff; --muted: #6b6b70; --line: #d9d9de;
  --add: #e6ffec; --del: #ffebe9; --addfg: #116329; --delfg: #82071e; --wait: #b35900; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6e6e6; --bg: #16161a; --muted: #9a9aa2; --line: #34343a;
  --add: #12361f; --del: #3d1418; --addfg: #7ee2a0; --delfg: #ffa1a8; --wait: #ffb35c; } }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.45 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
header.top { padding: .6rem 1rem; border-bottom: 1px solid var(--line); font-weight: 600; }
header.top a { color: inherit; text-decoration: none; }
main { max-width: 60rem; margin: 0 auto; padding: 1rem; }
h1 { font-size: 1.35rem; margin: .2rem 0; overflow-wrap: anywhere; }
h2 { font-size: 1.1rem; margin-top: 1.5rem; }
.meta, .why, small { color: var(--muted); font-size: .85rem; overflow-wrap: anywhere; }
code, pre { font: 13px/1.4 ui-monospace, SFMono-Regular, Menlo, monospace; }
pre { overflow-x: auto; padding: .5rem; border: 1px solid var(--line); border-radius: 6px; white-space: pre; }
.badge { display: inline-block; padding: 0 .5rem; border-radius: 999px; border: 1px solid var(--line); font-size: .8rem; }
.session.depth-1 { margin-left: 1.5rem; }
.session.depth-2 { margin-left: 3rem; }
.session.depth-3 { margin-left: 4.5rem; }
.session.depth-4 { margin-left: 6rem; }
.status-awaiting_budget .badge { color: var(--wait); border-color: var(--wait); font-weight: 600; }
.status-awaiting_approval .badge { color: var(--wait); border-color: var(--wait); font-weight: 600; }
.status-failed .badge { color: var(--delfg); border-color: var(--delfg); }
ul.sessions { list-style: none; padding: 0; margin: 0; }
ul.sessions li a { display: grid; gap: .1rem; padding: .7rem .2rem; border-bottom: 1px solid var(--line); color: inherit; text-decoration: none; }
.task { font-weight: 500; overflow-wrap: anywhere; }
.pending { border: 2px solid var(--wait); border-radius: 8px; padding: .5rem .8rem; margin: 1rem 0; }
.pending h3 { margin: .2rem 0; overflow-wrap: anywhere; }
ol.argv { padding-left: 1.6rem; } ol.argv code { white-space: pre-wrap; overflow-wrap: anywhere; }
.diff { display: grid; }
.diff span { display: block; white-space: pre; min-height: 1.4em; }
.diff .add { background: var(--add); color: var(--addfg); }
.diff .del { background: var(--del); color: var(--delfg); }
.diff .hunk, .diff .head { color: var(--muted); font-weight: 600; }
.buttons { display: flex; flex-wrap: wrap; gap: .5rem; margin: .5rem 0; }
button { font: inherit; padding: .5rem .9rem; border-radius: 6px; border: 1px solid var(--line); background: transparent; color: inherit; cursor: pointer; min-height: 2.6rem; }
button.approve { background: #1f883d; border-color: #1f883d; color: #fff; }
button.deny, button.abort { border-color: var(--delfg); color: var(--delfg); }
label { display: block; margin: .4rem 0; font-size: .9rem; }
input, textarea { display: block; width: 100%; font: inherit; padding: .45rem; border-radius: 6px; border: 1px solid var(--line); background: transparent; color: inherit; }
form.inline { display: inline-block; margin: .5rem .5rem 0 0; }
.flash { padding: .5rem .8rem; border-radius: 6px; border: 1px solid var(--wait); }
.notice { color: var(--delfg); }
blockquote { margin: .5rem 0; padding-left: .8rem; border-left: 3px solid var(--line); white-space: pre-wrap; overflow-wrap: anywhere; }
.transcript ol { list-style: none; padding: 0; }
.transcript li { padding: .35rem 0; border-bottom: 1px solid var(--line); }
.transcript .who { color: var(--muted); font-size: .75rem; text-transform: uppercase; margin-right: .5rem; }
.transcript .text { white-space: pre-wrap; overflow-wrap: anywhere; }
.transcript summary { cursor: pointer; overflow-wrap: anywhere; }
.plan .step-completed { text-decoration: line-through; color: var(--muted); }
.plan .step-in_progress { font-weight: 600; }
`;

export const INBOX_JS = `
(() => {
  const live = document.body.dataset.live;
  if (!live || !window.EventSource) return;
  let busy = false;
  const refresh = async () => {
    if (busy) return;
    busy = true;
    try {
      const response = await fetch(location.href, { headers: { accept: 'text/html' }, cache: 'no-store' });
      if (!response.ok) return;
      const next = new DOMParser().parseFromString(await response.text(), 'text/html');
      for (const id of ['live', 'list']) {
        const mine = document.getElementById(id);
        const theirs = next.getElementById(id);
        if (!mine || !theirs) continue;
        // Keep what someone is typing in a reason box of a call that is still pending.
        const typed = new Map();
        for (const input of mine.querySelectorAll('input[name=reason]')) {
          const call = input.closest('[data-call]');
          if (call && input.value) typed.set(call.dataset.call, input.value);
        }
        mine.replaceWith(theirs);
        for (const input of theirs.querySelectorAll('input[name=reason]')) {
          const call = input.closest('[data-call]');
          if (call && typed.has(call.dataset.call)) input.value = typed.get(call.dataset.call);
        }
      }
    } finally {
      busy = false;
    }
  };
  const events = new EventSource(live);
  events.addEventListener('change', refresh);
})();
`;
