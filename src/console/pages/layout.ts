import type { Principal } from '../model.ts';
import { html, type SafeHtml } from './html.ts';

export interface PageContext {
  principal: Principal;
  csrfToken: string;
  /** e.g. 'switchyard up (demo)' */
  title: string;
}

export type Section = 'cluster' | 'calls' | 'events';

const NAV: { section: Section; href: string; label: string }[] = [
  { section: 'cluster', href: '/', label: 'Cluster' },
  { section: 'calls', href: '/calls', label: 'Calls' },
  { section: 'events', href: '/events', label: 'Events' },
];

/** The document shell: no inline script or style anywhere (the server's CSP forbids them). */
function documentShell(title: string, head: SafeHtml | string, body: SafeHtml): string {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
${head}<link rel="stylesheet" href="/assets/console.css">
<script src="/assets/console.js" defer></script>
</head>
${body}
</html>
`.value;
}

/** A signed-in page: nav, who is signed in, sign-out, the live indicator and the flash area. */
export function renderLayout(ctx: PageContext, section: Section, heading: string, main: SafeHtml): string {
  const nav = NAV.map(
    (n) =>
      html`<a href="${n.href}"${n.section === section ? html` aria-current="page" class="current"` : ''}>${n.label}</a>`,
  );
  const body = html`<body data-page="${section}">
<header class="top">
<span class="brand">${ctx.title}</span>
<nav>${nav}</nav>
<span class="live" data-testid="live-status" id="live-status" data-state="connecting">connecting</span>
<span class="who">${ctx.principal.name} <span class="role role-${ctx.principal.role}">${ctx.principal.role}</span></span>
<form method="post" action="/logout" class="logout">
<input type="hidden" name="csrf" value="${ctx.csrfToken}">
<button type="submit">Sign out</button>
</form>
</header>
<div id="flash" class="flash" role="status" aria-live="polite" hidden></div>
<main>
<h1>${heading}</h1>
${main}
</main>
</body>`;
  return documentShell(
    `${heading} - ${ctx.title}`,
    html`<meta name="csrf-token" content="${ctx.csrfToken}">
`,
    body,
  );
}

/** Pages shown without a session (login, errors). */
export function renderBareLayout(title: string, main: SafeHtml): string {
  return documentShell(
    title,
    '',
    html`<body class="bare">
<main class="narrow">
${main}
</main>
</body>`,
  );
}
