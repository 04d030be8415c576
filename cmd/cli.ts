import { readFileSync } from 'node:fs';
import yargs, { type Argv } from 'yargs';
import { COMMANDS } from './commands.js';
import type { IO } from './io.js';
import { GLOBAL_OPTIONS, normalizeArrays, positionalsOf, type Args, type Command, type OptSpec } from './spec.js';

/** A usage error (exit status 2). */
export class UsageError extends Error {
  readonly usage = true;
}

export type Parsed = { kind: 'run'; command: Command; args: Args } | { kind: 'output'; text: string; status: number };

const EPILOG = `Parallel layer download (the seed pipeline):

  dist fetch localhost:5000/library/redis latest mediatype:application/vnd.docker.distribution.manifest.v2+json | \\
    jq -r '.layers[] | "dist fetch localhost:5000/library/redis "+.digest + "| dist ingest --expected-digest "+.digest+" --expected-size "+(.size | tostring) +" localhost:5000/library/redis@"+.digest' | \\
    xargs -I{} -P10 -n1 sh -c "{}"

The store is an OCI image layout at --root (default $DIST_ROOT, else ./.content).
Tables are tab-separated with a header; -q prints bare values; --json prints NDJSON.
Set DIST_DEBUG=1 for stack traces.`;

/**
 * Builds the one yargs instance: every command, its flags, help text with real examples,
 * completion, and one central .fail() that turns every usage problem into a UsageError.
 */
export function buildCli(argv: string[], _io: IO, onRun: (command: Command, args: Args) => void): Argv {
  const y = yargs(argv)
    .scriptName('dist')
    .usage('dist: content-addressed distribution of container images\n\nUsage: dist <command> [options]')
    .options(toYargs(GLOBAL_OPTIONS))
    .strict()
    .demandCommand(1, 'name a command; see dist --help')
    .recommendCommands()
    .help()
    .alias('help', 'h')
    .version(packageVersion())
    .wrap(null)
    .env(false)
    .exitProcess(false)
    .completion('completion', 'print a bash/zsh completion script (source it from your shell rc)')
    .example([
      ['watch -n0.2 $0 active', 'watch the downloads in flight'],
      ['$0 list -q | xargs $0 delete', 'empty the store'],
    ])
    .epilog(EPILOG)
    .fail((msg, err) => {
      // yargs reports its own usage problems as YError ("Not enough arguments following").
      if (err && err.name !== 'YError') throw err;
      throw new UsageError(msg ?? err?.message);
    });
  for (const c of COMMANDS) {
    y.command({
      command: c.command,
      aliases: c.aliases,
      describe: c.describe,
      builder: (sub: Argv) => {
        for (const [name, p] of Object.entries(c.positionals ?? {})) sub.positional(name, { describe: p.describe, type: p.type ?? 'string' });
        sub.options(toYargs(c.options ?? {}));
        if (c.examples) sub.example(c.examples.filter(([cmd]) => cmd.length <= 60));
        const long = (c.examples ?? []).filter(([cmd]) => cmd.length > 60);
        const text = [...long.map(([cmd, what]) => `Example: ${what}\n\n  ${cmd}`), c.epilog].filter(Boolean).join('\n\n');
        if (text) sub.epilog(text);
        // Variadic positionals: yargs would otherwise accept stray extra words silently.
        if (!positionalsOf(c.command).some((p) => p.variadic)) sub.strict();
        return sub;
      },
      handler: (args) => onRun(c, args as Args),
    });
  }
  return y;
}

/**
 * The version in dist's package.json, two levels up from this file in the bundle
 * (out/bundle/main.cjs) and in the transpiled tree (out/cmd/cli.js) alike. yargs would look
 * for it from the entry point, and find bin/package.json first.
 */
function packageVersion(): string {
  return JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version;
}

function toYargs(specs: Record<string, OptSpec>): Record<string, object> {
  const out: Record<string, object> = {};
  for (const [name, s] of Object.entries(specs)) {
    out[name] = {
      type: s.type,
      describe: s.describe,
      alias: s.alias,
      default: s.default,
      hidden: s.hidden,
      requiresArg: s.type !== 'boolean',
    };
  }
  return out;
}

/** Parses argv with yargs: a command to run, or text (help, version, completion) to print. */
export async function parseCli(argv: string[], io: IO): Promise<Parsed> {
  let selected: Parsed | undefined;
  const y = buildCli(argv, io, (command, args) => {
    selected = { kind: 'run', command, args: normalizeArrays({ ...GLOBAL_OPTIONS, ...command.options }, args) };
  });
  let output = '';
  await new Promise<void>((resolve, reject) => {
    try {
      y.parse(argv, {}, (err: Error | undefined, _args: unknown, text: string) => {
        output = text;
        if (err) reject(err instanceof UsageError || !(err instanceof Error) ? err : new UsageError(err.message));
        else resolve();
      });
    } catch (err) {
      reject(err);
    }
  });
  if (selected) return selected;
  return { kind: 'output', text: output ? `${output}\n` : '', status: 0 };
}
