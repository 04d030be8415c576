import { isDistError } from '../lib/errors.js';
import { COMMANDS } from './commands.js';
import { fastParse } from './fast.js';
import { print, readerWentAway, write, type IO } from './io.js';
import { commandName, usageError, type Args, type Command } from './spec.js';

const HELPISH = new Set(['--help', '-h', '--version', 'help', '--get-yargs-completions']);

/**
 * Runs one dist invocation and returns its exit status. All errors end here: a one-line
 * `dist <command>: <message>` on stderr, exit 1 (2 for usage errors), and a stack trace only
 * with DIST_DEBUG=1.
 */
export async function main(argv: string[], io: IO): Promise<number> {
  // Global flags may come before the command (`dist --root X path D`); the fast parser takes
  // them after it, so move them there.
  let at = 0;
  while (argv[at] === '--root' || argv[at]?.startsWith('--root=')) at += argv[at] === '--root' ? 2 : 1;
  let command = COMMANDS.find((c) => commandName(c) === argv[at] || c.aliases?.includes(argv[at]!));
  let args: Args | undefined;
  if (command && !argv.some((a) => HELPISH.has(a))) args = fastParse(command, [...argv.slice(at + 1), ...argv.slice(0, at)]);
  let name = command ? commandName(command) : undefined;
  try {
    if (!args) {
      const { parseCli } = await import('./cli.js');
      const parsed = await parseCli(argv, io);
      if (parsed.kind === 'output') {
        await print(io, parsed.text);
        return parsed.status;
      }
      command = parsed.command;
      args = parsed.args;
      name = commandName(command);
    }
    checkNumbers(command!, args);
    return await command!.run(args, io);
  } catch (err) {
    return report(err, name, io);
  }
}

/** yargs turns `--expected-size abc` into NaN; that is a usage error, not a value. */
function checkNumbers(command: Command, args: Args): void {
  for (const [name, spec] of Object.entries(command.options ?? {})) {
    if (spec.type === 'number' && typeof args[name] === 'number' && Number.isNaN(args[name])) {
      throw usageError(`--${name} takes a number`);
    }
  }
}

async function report(err: unknown, name: string | undefined, io: IO): Promise<number> {
  const prefix = name ? `dist ${name}` : 'dist';
  // The reader of our stdout went away (`| head`, or `dist ingest` found the blob and exited):
  // not an error. Any other EPIPE or premature close (stdin, a socket) is one.
  if (readerWentAway(err, io)) return 0;
  if (io.signal.aborted && (err === io.signal.reason || (err as Error)?.name === 'AbortError')) {
    await write(io.stderr, `${prefix}: interrupted\n`);
    return 130;
  }
  const usage = (err as { usage?: boolean } | undefined)?.usage === true;
  let line = err instanceof Error ? err.message : String(err);
  line = line.replace(/\s*\n\s*/g, '; ');
  let text = `${prefix}: ${line}\n`;
  if (usage) text += `Run 'dist ${name ? `${name} ` : ''}--help' for usage.\n`;
  if (isDistError(err) && err.data.hint && io.env.DIST_DEBUG !== '1') text = `${prefix}: ${line} (${err.data.hint})\n`;
  if (io.env.DIST_DEBUG === '1' && err instanceof Error) text += `${err.stack}\n`;
  await write(io.stderr, text);
  return usage ? 2 : 1;
}

export { COMMANDS, type Command };
