// switchyard console: live updates over SSE and the operator's buttons. Plain ES2020, no
// dependencies, no build (docs/decisions/0007). Everything from the server that is not our own
// markup goes into the page with textContent, never innerHTML.
(() => {
  const csrf = document.querySelector('meta[name="csrf-token"]')?.getAttribute('content') ?? '';
  const liveStatus = document.getElementById('live-status');
  const flash = document.getElementById('flash');
  let flashTimer = 0;

  function showFlash(text, kind) {
    if (!flash) return;
    flash.textContent = text;
    flash.className = `flash flash-${kind}`;
    flash.hidden = false;
    clearTimeout(flashTimer);
    if (kind !== 'error') flashTimer = setTimeout(() => (flash.hidden = true), 4000);
  }

  function setLive(state) {
    if (!liveStatus) return;
    liveStatus.textContent = state;
    liveStatus.dataset.state = state;
  }

  function toLogin() {
    location.href = `/login?next=${encodeURIComponent(location.pathname + location.search)}`;
  }

  // --- cluster fragment refresh ------------------------------------------------------------
  let refreshing = false;
  let refreshAgain = false;

  function editing(container) {
    const active = document.activeElement;
    return active !== null && active.tagName === 'INPUT' && container.contains(active);
  }

  async function refreshCluster() {
    const container = document.getElementById('cluster-live');
    if (!container) return;
    if (refreshing) {
      refreshAgain = true;
      return;
    }
    refreshing = true;
    try {
      const res = await fetch('/fragments/cluster', {
        credentials: 'same-origin',
        headers: { Accept: 'text/html' },
      });
      if (res.status === 401) return toLogin();
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const markup = await res.text();
      // Swapping while someone types a weight would throw their input away: wait for focusout.
      if (editing(container)) refreshAgain = true;
      else container.innerHTML = markup; // our own server-rendered, escaped fragment
    } catch (err) {
      showFlash(`Could not refresh the cluster view: ${err.message}`, 'error');
    } finally {
      refreshing = false;
      if (refreshAgain && !editing(container)) {
        refreshAgain = false;
        refreshCluster();
      }
    }
  }

  document.addEventListener('focusout', () => {
    const container = document.getElementById('cluster-live');
    // focusout fires before focus moves on: look again once it has.
    if (container && refreshAgain)
      setTimeout(() => {
        if (!editing(container)) refreshCluster();
      }, 0);
  });

  // --- events page ---------------------------------------------------------------------------
  function formatTsUs(tsUs) {
    const d = new Date(Math.floor(tsUs / 1000));
    return Number.isNaN(d.getTime()) ? String(tsUs) : d.toISOString().replace('T', ' ').replace('Z', '');
  }

  // Same as formatDetail in src/console/pages/format.ts.
  function formatDetail(detail) {
    return Object.entries(detail ?? {})
      .map(([k, v]) => `${k}=${typeof v === 'string' && /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v)}`)
      .join(' ');
  }

  function cell(text, className) {
    const td = document.createElement('td');
    if (className) td.className = className;
    td.textContent = text;
    return td;
  }

  function prependEvent(e) {
    const body = document.getElementById('events-body');
    if (!body) return;
    const tr = document.createElement('tr');
    tr.dataset.testid = 'event-row';
    tr.className = 'fresh';
    const kind = cell('', '');
    const span = document.createElement('span');
    span.className = 'kind';
    span.textContent = String(e.kind);
    kind.append(span);
    tr.append(
      cell(formatTsUs(Number(e.tsUs)), 'mono'),
      kind,
      cell(String(e.subject), ''),
      cell(String(e.actor), ''),
      cell(formatDetail(e.detail), 'mono small detail'),
    );
    body.prepend(tr);
    document.getElementById('events-empty')?.remove();
    // Keep the page bounded when it stays open for days.
    while (body.rows.length > 1000) body.deleteRow(-1);
  }

  // --- SSE -----------------------------------------------------------------------------------
  if (typeof EventSource === 'function' && liveStatus) {
    const source = new EventSource('/api/v1/stream');
    let lost = false;
    source.addEventListener('open', () => {
      setLive('live');
      // Changes may have happened while the stream was away.
      if (lost) refreshCluster();
    });
    source.addEventListener('error', () => {
      lost = true;
      setLive('reconnecting');
    });
    source.addEventListener('cluster', () => refreshCluster());
    source.addEventListener('event', (msg) => {
      try {
        prependEvent(JSON.parse(msg.data));
      } catch {
        // A malformed event is not worth breaking the page for.
      }
    });
  }

  // --- operator actions ----------------------------------------------------------------------
  async function act(button) {
    const node = button.dataset.node;
    const action = button.dataset.action;
    if (!node || !action) return;
    let body = {};
    if (action === 'weight') {
      if (button.dataset.clear) body = { weight: null };
      else {
        const input = document.getElementById(`weight-input-${node}`);
        const weight = Number(input?.value);
        if (!Number.isInteger(weight) || weight < 1 || weight > 100) {
          showFlash('Weight must be a whole number from 1 to 100.', 'error');
          return;
        }
        body = { weight };
      }
    }
    button.disabled = true;
    try {
      const res = await fetch(`/api/v1/nodes/${encodeURIComponent(node)}/${action}`, {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'X-CSRF-Token': csrf, 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify(body),
      });
      if (res.status === 401) return toLogin();
      if (!res.ok) {
        let message = `HTTP ${res.status}`;
        try {
          const json = await res.json();
          if (json?.error?.message) message = `${json.error.message} (${json.error.code})`;
        } catch {
          // not JSON: keep the status
        }
        showFlash(`${action} ${node} failed: ${message}`, 'error');
        return;
      }
      showFlash(`${action} ${node}: done`, 'ok');
      // Let the weight input go so the refresh is not held back waiting for focusout.
      if (document.activeElement instanceof HTMLElement) document.activeElement.blur();
      refreshAgain = false;
      await refreshCluster();
    } catch (err) {
      showFlash(`${action} ${node} failed: ${err.message}`, 'error');
    } finally {
      button.disabled = false;
    }
  }

  document.addEventListener('click', (ev) => {
    const button = ev.target instanceof Element ? ev.target.closest('button[data-action]') : null;
    if (button) {
      ev.preventDefault();
      act(button);
    }
  });

  // Enter in a weight input sets the weight.
  document.addEventListener('keydown', (ev) => {
    const input = ev.target;
    if (ev.key !== 'Enter' || !(input instanceof HTMLInputElement) || !input.id.startsWith('weight-input-'))
      return;
    ev.preventDefault();
    const button = document.querySelector(
      `button[data-action="weight"][data-node="${CSS.escape(input.id.slice(13))}"]:not([data-clear])`,
    );
    if (button) act(button);
  });
})();
