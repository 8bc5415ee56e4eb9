import { chmod, readFile, stat } from 'node:fs/promises';
import { writeFileAtomic } from '../core/atomic-file.ts';
import { SwitchyardError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import type { TemplateConfig } from './config.ts';
import { TEMPLATE_VAR_NAME } from './template-vars.ts';

/**
 * Renders Asterisk's config files from templates before each start. The only syntax is
 * `{{name}}`: no expressions, no conditionals, no includes, nothing executed, so a template is
 * safe to take from an operator and its output is predictable. Everything is checked before
 * anything is written: one bad template leaves every file as it was.
 */

/** Larger sources are refused: a config template is kilobytes, not a data file. */
export const MAX_TEMPLATE_BYTES = 4 * 1024 * 1024;
/** Permissions of a new target when the template sets none. */
export const DEFAULT_TARGET_MODE = 0o644;

/** One reason a template cannot be rendered; `line` is 0 when it concerns the whole file. */
export interface TemplateProblem {
  file: string;
  line: number;
  message: string;
}

export type RenderTextResult = { ok: true; text: string } | { ok: false; problems: TemplateProblem[] };

// A placeholder cannot span lines and cannot nest; `[^{}]` keeps `{{{x}}}` from matching oddly.
const PLACEHOLDER = /\{\{([^{}\r\n]*)\}\}/g;
/**
 * Characters a value may not hold. Newline (and CR, which some parsers also end a line on) would
 * let a value add config lines, e.g. a `[section]` of its own; NUL ends a C string early in
 * Asterisk's parser. Other C0 controls have no business in a config value either; tab is fine.
 */
const FORBIDDEN_IN_VALUE = /[\u0000-\u0008\u000a-\u001f\u007f]/;

function describeForbidden(value: string): string {
  if (value.includes('\n') || value.includes('\r')) return 'a newline';
  if (value.includes('\u0000')) return 'a NUL';
  return 'a control character';
}

/**
 * Problems with the variables themselves: names that no placeholder could use and values that
 * could inject lines. Messages name the variable but never quote its value (it may be a secret).
 */
export function checkTemplateVariables(vars: Readonly<Record<string, string>>): TemplateProblem[] {
  const problems: TemplateProblem[] = [];
  for (const [name, value] of Object.entries(vars)) {
    if (!TEMPLATE_VAR_NAME.test(name))
      problems.push({
        file: '(variables)',
        line: 0,
        message: `invalid variable name ${JSON.stringify(name)}`,
      });
    else if (FORBIDDEN_IN_VALUE.test(value))
      problems.push({
        file: '(variables)',
        line: 0,
        message: `the value of ${name} contains ${describeForbidden(value)}: refused, it could inject config lines`,
      });
  }
  return problems;
}

/**
 * Substitutes every `{{name}}` in `text` in one pass (a value that itself contains `{{x}}` is
 * not expanded again). Every unknown placeholder and every `{{` that opens no placeholder is
 * reported with `file:line`, not just the first, so one run shows everything to fix.
 */
export function renderTemplateText(
  text: string,
  vars: Readonly<Record<string, string>>,
  file: string,
): RenderTextResult {
  const problems: TemplateProblem[] = [...checkTemplateVariables(vars)];
  const lines = text.split('\n');
  const out = lines.map((line, i) => {
    const rendered = line.replace(PLACEHOLDER, (whole, name: string) => {
      if (Object.hasOwn(vars, name)) return vars[name] ?? '';
      problems.push({ file, line: i + 1, message: `unknown placeholder ${whole}` });
      return whole;
    });
    if (line.replace(PLACEHOLDER, '').includes('{{'))
      problems.push({ file, line: i + 1, message: '"{{" without a closing "}}" on the same line' });
    return rendered;
  });
  return problems.length > 0 ? { ok: false, problems } : { ok: true, text: out.join('\n') };
}

export function formatTemplateProblems(problems: readonly TemplateProblem[]): string {
  return problems
    .map((p) => (p.line > 0 ? `${p.file}:${p.line}: ${p.message}` : `${p.file}: ${p.message}`))
    .join('\n');
}

export interface RenderTemplatesOptions {
  templates: readonly TemplateConfig[];
  vars: Readonly<Record<string, string>>;
  logger?: Logger;
}

export interface RenderTemplatesOutcome {
  /** Targets rewritten (content) or re-chmodded (mode only), in config order. */
  changed: string[];
  /** Targets already up to date, left untouched (mtime included). */
  unchanged: string[];
}

async function readSource(source: string, problems: TemplateProblem[]): Promise<string | undefined> {
  let bytes: Buffer;
  try {
    const st = await stat(source);
    if (!st.isFile()) {
      problems.push({ file: source, line: 0, message: 'not a regular file' });
      return undefined;
    }
    if (st.size > MAX_TEMPLATE_BYTES) {
      problems.push({ file: source, line: 0, message: `larger than ${MAX_TEMPLATE_BYTES} bytes` });
      return undefined;
    }
    bytes = await readFile(source);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (err as Error).message;
    problems.push({ file: source, line: 0, message: `cannot read template: ${why}` });
    return undefined;
  }
  try {
    // Fatal decoding: a stray byte would otherwise turn silently into U+FFFD in the output.
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    problems.push({ file: source, line: 0, message: 'not valid UTF-8' });
    return undefined;
  }
}

/** The target's bytes and permission bits, or undefined when it does not exist yet. */
async function readTarget(target: string): Promise<{ bytes: Buffer; mode: number } | undefined> {
  try {
    const [bytes, st] = await Promise.all([readFile(target), stat(target)]);
    return { bytes, mode: st.mode & 0o7777 };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new SwitchyardError('SY_ERR_TEMPLATE_WRITE', `cannot read ${target}: ${(err as Error).message}`, {
      retryable: true,
      cause: err,
    });
  }
}

/**
 * Renders every template, then writes the targets whose content (or requested mode) differs,
 * each atomically. A target with no `mode` keeps its current permissions: rewriting pjsip.conf
 * must not widen a 0640 an operator chose.
 *
 * @throws SwitchyardError SY_ERR_TEMPLATE_INVALID with `details.problems` (every problem in
 *   every template) before anything is written; SY_ERR_TEMPLATE_WRITE when a target cannot be
 *   written (targets already replaced stay replaced: each file is whole, old or new).
 */
export async function renderTemplates(opts: RenderTemplatesOptions): Promise<RenderTemplatesOutcome> {
  const problems: TemplateProblem[] = [...checkTemplateVariables(opts.vars)];
  // Variable problems once, not once per template.
  const varsOk = problems.length === 0;
  const rendered: { template: TemplateConfig; text: string }[] = [];
  for (const template of opts.templates) {
    const source = await readSource(template.source, problems);
    if (source === undefined || !varsOk) continue;
    const res = renderTemplateText(source, opts.vars, template.source);
    if (res.ok) rendered.push({ template, text: res.text });
    else problems.push(...res.problems);
  }
  if (problems.length > 0) {
    throw new SwitchyardError(
      'SY_ERR_TEMPLATE_INVALID',
      `cannot render config templates:\n${formatTemplateProblems(problems)}`,
      { details: { problems } },
    );
  }

  const outcome: RenderTemplatesOutcome = { changed: [], unchanged: [] };
  for (const { template, text } of rendered) {
    const target = template.target;
    const wanted = template.mode === undefined ? undefined : Number.parseInt(template.mode, 8);
    const current = await readTarget(target);
    const bytes = Buffer.from(text, 'utf8');
    try {
      if (current?.bytes.equals(bytes)) {
        if (wanted === undefined || wanted === current.mode) {
          outcome.unchanged.push(target);
          continue;
        }
        await chmod(target, wanted);
      } else {
        await writeFileAtomic(target, bytes, { mode: wanted ?? current?.mode ?? DEFAULT_TARGET_MODE });
      }
    } catch (err) {
      throw new SwitchyardError(
        'SY_ERR_TEMPLATE_WRITE',
        `cannot write ${target}: ${(err as Error).message}`,
        {
          retryable: true,
          cause: err,
          details: { changed: outcome.changed },
        },
      );
    }
    outcome.changed.push(target);
    opts.logger?.info({ source: template.source, target }, 'config file rendered');
  }
  return outcome;
}
