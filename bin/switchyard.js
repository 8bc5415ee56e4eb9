#!/usr/bin/env node
// Thin launcher: the CLI is TypeScript that Node 24 runs directly (type stripping).
import '../src/cli/main.ts';
