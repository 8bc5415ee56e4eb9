import assert from 'node:assert/strict';
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { renderTemplates, renderTemplateText, type TemplateProblem } from '../../../src/agent/templates.ts';
import { SwitchyardError } from '../../../src/core/errors.ts';

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'sy-templates-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const VARS = { nodeId: 'as1', sipHost: '10.0.0.21', sipPort: '5060' };
// biome-ignore lint/suspicious/noTemplateCurlyInString: Asterisk dialplan, not a JS template.
const DIALPLAN = 'exten => _X.,1,Set(X=${CALLERID(num)})';

async function problemsOf(promise: Promise<unknown>): Promise<{ text: string; problems: TemplateProblem[] }> {
  try {
    await promise;
  } catch (err) {
    assert.ok(SwitchyardError.is(err), String(err));
    assert.equal(err.code, 'SY_ERR_TEMPLATE_INVALID');
    return { text: err.message, problems: (err.details as { problems: TemplateProblem[] }).problems };
  }
  assert.fail('expected SY_ERR_TEMPLATE_INVALID');
}

test('templates - placeholders are replaced in one pass; nothing else is syntax', () => {
  const res = renderTemplateText(
    `[{{nodeId}}]\nbind={{sipHost}}:{{sipPort}}\n${DIALPLAN}\n`,
    { ...VARS, nodeId: '{{sipHost}}' },
    'pjsip.conf',
  );
  assert.ok(res.ok);
  assert.equal(res.text, `[{{sipHost}}]\nbind=10.0.0.21:5060\n${DIALPLAN}\n`);
});

test('templates - every unknown placeholder is listed with file:line, in every template, and nothing is written', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'good.tpl'), 'id={{nodeId}}\n');
  writeFileSync(join(dir, 'a.tpl'), 'ok={{nodeId}}\nx={{nodeid}}\ny={{ nodeId }} z={{other}}\n');
  writeFileSync(join(dir, 'b.tpl'), '\n\nw={{nodeId}\n');
  const { text, problems } = await problemsOf(
    renderTemplates({
      templates: [
        { source: join(dir, 'good.tpl'), target: join(dir, 'good.conf') },
        { source: join(dir, 'a.tpl'), target: join(dir, 'a.conf') },
        { source: join(dir, 'b.tpl'), target: join(dir, 'b.conf') },
        { source: join(dir, 'missing.tpl'), target: join(dir, 'c.conf') },
      ],
      vars: VARS,
    }),
  );
  assert.deepEqual(
    problems.map((p) => `${p.file.slice(dir.length + 1)}:${p.line}: ${p.message}`),
    [
      'a.tpl:2: unknown placeholder {{nodeid}}',
      'a.tpl:3: unknown placeholder {{ nodeId }}',
      'a.tpl:3: unknown placeholder {{other}}',
      'b.tpl:3: "{{" without a closing "}}" on the same line',
      'missing.tpl:0: cannot read template: no such file',
    ],
  );
  assert.match(text, new RegExp(`${join(dir, 'a.tpl')}:2: unknown placeholder \\{\\{nodeid\\}\\}`));
  assert.equal(existsSync(join(dir, 'good.conf')), false, 'all or nothing');
});

test('templates - a value with a newline or NUL is refused: it could inject config lines', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'a.tpl'), 'secret={{trunkPassword}}\n');
  for (const [value, what] of [
    ['hunter2\n[evil]\ntype=endpoint', /contains a newline/],
    ['hunter2\r', /contains a newline/],
    ['hunter2\u0000', /contains a NUL/],
    ['hunter2\u001b[2J', /contains a control character/],
  ] as const) {
    const { text } = await problemsOf(
      renderTemplates({
        templates: [{ source: join(dir, 'a.tpl'), target: join(dir, 'a.conf') }],
        vars: { trunkPassword: value },
      }),
    );
    assert.match(text, what);
    assert.match(text, /trunkPassword/);
    assert.doesNotMatch(text, /hunter2/, 'the value is never quoted');
  }
  assert.equal(existsSync(join(dir, 'a.conf')), false);
  const tab = renderTemplateText('a={{v}}', { v: 'x\ty' }, 'f');
  assert.ok(tab.ok, 'a tab is fine');
});

test('templates - targets are written atomically, and only when their content changes', async (t) => {
  const dir = tempDir(t);
  const source = join(dir, 'pjsip.tpl');
  const target = join(dir, 'etc', 'pjsip.conf');
  writeFileSync(source, 'bind={{sipHost}}:{{sipPort}}\n');
  const templates = [{ source, target }];

  assert.deepEqual(await renderTemplates({ templates, vars: VARS }), { changed: [target], unchanged: [] });
  assert.equal(readFileSync(target, 'utf8'), 'bind=10.0.0.21:5060\n');
  const first = statSync(target);

  assert.deepEqual(await renderTemplates({ templates, vars: VARS }), { changed: [], unchanged: [target] });
  const same = statSync(target);
  assert.equal(same.ino, first.ino, 'not rewritten');
  assert.equal(same.mtimeMs, first.mtimeMs);

  assert.deepEqual(await renderTemplates({ templates, vars: { ...VARS, sipPort: '5070' } }), {
    changed: [target],
    unchanged: [],
  });
  assert.equal(readFileSync(target, 'utf8'), 'bind=10.0.0.21:5070\n');
  assert.notEqual(statSync(target).ino, first.ino, 'replaced by rename, never rewritten in place');
  assert.deepEqual(readdirSync(join(dir, 'etc')), ['pjsip.conf'], 'no temp file left behind');
});

test('templates - modes: set exactly (umask ignored), kept when unset, a mode change alone is a change', async (t) => {
  const dir = tempDir(t);
  const source = join(dir, 'a.tpl');
  writeFileSync(source, 'x={{nodeId}}\n');
  const target = join(dir, 'a.conf');
  const mode = () => statSync(target).mode & 0o7777;

  await renderTemplates({ templates: [{ source, target, mode: '0640' }], vars: VARS });
  assert.equal(mode(), 0o640);

  chmodSync(target, 0o600);
  await renderTemplates({ templates: [{ source, target }], vars: { ...VARS, nodeId: 'as2' } });
  assert.equal(mode(), 0o600, 'a rewrite keeps the permissions the operator chose');

  const res = await renderTemplates({
    templates: [{ source, target, mode: '644' }],
    vars: { ...VARS, nodeId: 'as2' },
  });
  assert.deepEqual(res.changed, [target]);
  assert.equal(mode(), 0o644);
});

test('templates - a source that is not UTF-8 is refused rather than mangled', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'bin.tpl'), Buffer.from([0x61, 0xff, 0xfe, 0x0a]));
  const { problems } = await problemsOf(
    renderTemplates({ templates: [{ source: join(dir, 'bin.tpl'), target: join(dir, 'x') }], vars: VARS }),
  );
  assert.deepEqual(
    problems.map((p) => p.message),
    ['not valid UTF-8'],
  );
});
