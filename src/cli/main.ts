import { runCli } from './program.ts';

// Entry point of `switchyard` (bin/switchyard.js) and `npm start`. Exiting explicitly makes a
// one-shot command end even if a client library leaves a timer or socket behind.
process.exit(await runCli(process.argv.slice(2)));
