import { html } from './html.ts';
import { renderBareLayout } from './layout.ts';

export function renderLoginPage(opts: { error?: string; next?: string }): string {
  return renderBareLayout(
    'Sign in - switchyard',
    html`<h1>switchyard console</h1>
<form method="post" action="/login" class="login" data-testid="login-form">
${opts.error === undefined ? '' : html`<p class="error" role="alert" data-testid="login-error">${opts.error}</p>`}
<label for="token">Access token</label>
<input type="password" id="token" name="token" autocomplete="current-password" required autofocus>
<input type="hidden" name="next" value="${opts.next ?? '/'}">
<button type="submit">Sign in</button>
</form>
<p class="muted">The admin token is in the file <code>switchyard up</code> printed when it started:
<code>var/console/admin.token</code> under its working directory.</p>`,
  );
}

export function renderErrorPage(status: number, message: string): string {
  return renderBareLayout(
    `${status} - switchyard`,
    html`<h1>${status}</h1>
<p class="error" data-testid="error-message">${message}</p>
<p><a href="/">Back to the cluster</a></p>`,
  );
}
