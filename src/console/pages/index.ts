/**
 * The console's pages: server-rendered HTML from template strings (every interpolation escaped),
 * one small script and one stylesheet. docs/decisions/0007-console-without-build-step.md.
 */
export { readAsset } from './assets.ts';
export { renderCallPage } from './call.ts';
export { type CallFilters, renderCallsPage } from './calls.ts';
export { renderClusterFragment, renderClusterPage } from './cluster.ts';
export { renderEventsPage } from './events.ts';
export { escapeHtml, html, raw, type SafeHtml } from './html.ts';
export type { PageContext } from './layout.ts';
export { renderErrorPage, renderLoginPage } from './login.ts';
