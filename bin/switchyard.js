#!/usr/bin/env node
// The `switchyard` command.
//
// It runs the compiled JavaScript in dist/ (`npm run build`) when that is at least as new as
// every source file: compiled code starts faster and needs about 30 MB less memory than Node's
// TypeScript stripping. Otherwise (a checkout without a build, or sources edited since) it runs
// the TypeScript sources directly, which Node 24 can.
//
// For `switchyard agent` it first turns V8's optimizing compilers (TurboFan, Maglev) off. The
// agent waits on sockets and timers; optimizing buys it no measurable CPU but costs about 9 MB of
// resident memory, most of it while Node's module loader runs hot at start-up, which is why this
// must happen here, before the CLI's modules load (docs/decisions/0005, docs/benchmarks.md).
import { existsSync, readdirSync, statSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';

if (process.argv[2] === 'agent') {
  setFlagsFromString('--no-opt');
  setFlagsFromString('--no-maglev');
}

const root = new URL('../', import.meta.url);
const stamp = new URL('dist/.built', root);

function newestSourceMs(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = new URL(entry.name + (entry.isDirectory() ? '/' : ''), dir);
    newest = Math.max(newest, entry.isDirectory() ? newestSourceMs(path) : statSync(path).mtimeMs);
  }
  return newest;
}

const sources = new URL('src/', root);
// An image may ship dist/ without src/: then the build is all there is.
const compiled =
  existsSync(stamp) && (!existsSync(sources) || statSync(stamp).mtimeMs >= newestSourceMs(sources));
await import(new URL(compiled ? 'dist/cli/main.js' : 'src/cli/main.ts', root).href);
