/**
 * npm run build: compiles src/ to dist/ with tsc (tsconfig.build.json) and writes dist/.built,
 * the stamp bin/switchyard.js compares with the sources' times to decide whether dist/ is
 * current. Production runs dist/ (docs/decisions/0005).
 */
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
rmSync(resolve(root, 'dist'), { recursive: true, force: true });
execFileSync(process.execPath, [tsc, '-p', resolve(root, 'tsconfig.build.json')], {
  stdio: 'inherit',
  cwd: root,
});
mkdirSync(resolve(root, 'dist'), { recursive: true });
// Files the code reads at run time beside itself (the console's script and style sheet).
cpSync(resolve(root, 'src/console/assets'), resolve(root, 'dist/console/assets'), { recursive: true });
writeFileSync(resolve(root, 'dist/.built'), `${new Date().toISOString()}\n`);
console.log('built dist/ (bin/switchyard.js now runs the compiled code)');
