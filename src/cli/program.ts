import { Command, CommanderError } from '@commander-js/extra-typings';
import pkg from '../../package.json' with { type: 'json' };
import { registerAgentCommand } from './agent-command.ts';
import { registerCaptureCommands } from './capture-commands.ts';
import { registerConsoleCommands } from './console-commands.ts';
import { registerIntentCommands } from './intents.ts';
import { registerLabCommands } from './lab-command.ts';
import { registerNodeCommands } from './nodes.ts';
import type { CliContext } from './operator.ts';
import { ExitCode, reportError } from './output.ts';
import { registerRoleCommands } from './roles.ts';
import { registerUpCommand } from './up-command.ts';

/** The `switchyard` program; `ctx.exitCode` collects the outcome of the command that runs. */
export function createProgram(ctx: CliContext): Command {
  const program = new Command()
    .name('switchyard')
    .description('Control plane for Asterisk fleets behind Kamailio load balancers.')
    .version(pkg.version)
    // Settings below are inherited by every command added after them.
    .exitOverride()
    .showSuggestionAfterError()
    .showHelpAfterError('(add --help for usage)');
  program.addHelpText(
    'after',
    '\nExit codes: 0 ok, 1 runtime error (registry or Kamailio unreachable...), 2 usage or config error.\n',
  );
  registerRoleCommands(program, ctx);
  registerUpCommand(program, ctx);
  registerConsoleCommands(program, ctx);
  registerAgentCommand(program, ctx);
  registerCaptureCommands(program, ctx);
  registerNodeCommands(program, ctx);
  registerIntentCommands(program, ctx);
  registerLabCommands(program, ctx);
  return program;
}

/** Runs one command line (without the node and script arguments); resolves with the exit code. */
export async function runCli(argv: readonly string[]): Promise<number> {
  const ctx: CliContext = { exitCode: ExitCode.ok };
  const program = createProgram(ctx);
  try {
    await program.parseAsync([...argv], { from: 'user' });
  } catch (err) {
    // Commander has already printed its message; --help and --version end here with code 0.
    if (err instanceof CommanderError) return err.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
    return reportError(err, false);
  }
  return ctx.exitCode;
}
