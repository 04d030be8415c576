import { DistError } from '../lib/errors.js';
import type { IO } from './io.js';

/** One flag of a command. The same spec feeds yargs (help, validation) and the fast parser. */
export interface OptSpec {
  type: 'string' | 'boolean' | 'number';
  describe: string;
  alias?: string | string[];
  default?: unknown;
  /** Repeatable flag: the command gets a list (see normalizeArrays). */
  array?: boolean;
  /** Hidden from help. */
  hidden?: boolean;
}

/** Parsed arguments: flags by their long name (and camelCase), positionals by name. */
export type Args = Record<string, any>;

/**
 * A command: flags and positionals declared as data, and a `run` that does the work.
 * `run` imports its library lazily so that start-up only pays for the command it runs.
 * It returns the exit status; errors it throws are reported by cmd/main.ts.
 */
export interface Command {
  /** yargs syntax: `path [digests..]`, `ingest <ref>`. */
  command: string;
  aliases?: string[];
  describe: string;
  options?: Record<string, OptSpec>;
  positionals?: Record<string, { describe: string; type?: 'string' | 'number' }>;
  examples?: [string, string][];
  /** Extra text after the examples in --help. */
  epilog?: string;
  /** Strict positional count is not wanted (e.g. fetch hints). */
  run(args: Args, io: IO): Promise<number>;
}

/** Flags every command takes. */
export const GLOBAL_OPTIONS: Record<string, OptSpec> = {
  root: {
    type: 'string',
    describe: 'content store root (default: $DIST_ROOT, else ./.content)',
  },
};

export function camel(name: string): string {
  return name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

export interface PositionalSpec {
  name: string;
  required: boolean;
  variadic: boolean;
}

/** The positionals of a yargs command string: `<a>` required, `[b]` optional, `..` variadic. */
export function positionalsOf(command: string): PositionalSpec[] {
  return command
    .split(/\s+/)
    .slice(1)
    .map((tok) => {
      const required = tok.startsWith('<');
      const inner = tok.slice(1, -1);
      const variadic = inner.endsWith('..');
      return { name: variadic ? inner.slice(0, -2) : inner, required, variadic };
    });
}

export function commandName(c: Command): string {
  return c.command.split(/\s+/)[0]!;
}

/** A usage error: cmd/main.ts reports it with a pointer to --help and exit status 2. */
export function usageError(message: string): Error {
  return Object.assign(new Error(message), { usage: true });
}

/**
 * A flag that must be a whole number of at least `min` (undefined when not given).
 * Errors: EINVAL naming the flag and the value.
 */
export function wholeNumber(value: unknown, flag: string, min = 0): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw new DistError('EINVAL', `${flag} must be a whole number${min > 0 ? ` of at least ${min}` : ''}, got ${String(value)}`);
  }
  return value;
}

/**
 * Repeatable flags as both parsers give them: a list of the values given, or undefined when
 * none were. They are not declared as yargs arrays, which are greedy (`--mirror M IMAGE` would
 * take IMAGE as a second mirror); a flag given twice is collected into a list by both parsers.
 */
export function normalizeArrays(specs: Record<string, OptSpec>, args: Args): Args {
  for (const [name, spec] of Object.entries(specs)) {
    if (!spec.array) continue;
    for (const key of new Set([name, camel(name)])) {
      const value = args[key];
      if (value === undefined) continue;
      const given = ([] as unknown[]).concat(value).filter((v) => v !== undefined);
      args[key] = given.length ? given : undefined;
    }
  }
  return args;
}
