import parse from 'yargs-parser';
import { camel, GLOBAL_OPTIONS, normalizeArrays, positionalsOf, type Args, type Command, type OptSpec } from './spec.js';

/**
 * Parses plain invocations with yargs-parser, yargs' own parser, from the same command
 * definitions (cmd/spec.ts) that cmd/cli.ts gives yargs, without loading the rest of yargs:
 * bundled, yargs costs about as much again as node's own start-up (measured: ~100 ms a process
 * against ~50 ms for `node -e 0`), and dist runs once per layer under `xargs -P`. Anything
 * yargs would add to (help, version, unknown flags, a flag missing its value, wrong positional
 * counts) returns undefined, and yargs then parses the same argv and gives the proper help or
 * usage error. test/cmd/parse.test.ts runs every command's flags and examples through both.
 */
export function fastParse(command: Command, argv: string[]): Args | undefined {
  const specs: Record<string, OptSpec> = { ...GLOBAL_OPTIONS, ...command.options };
  const parsed = parse.detailed(argv, { ...parserOptions(specs), configuration: { 'parse-positional-numbers': false } });
  if (parsed.error) return undefined;
  const args: Args = parsed.argv;
  const known = new Set<string>(['_', '--']);
  for (const [name, spec] of Object.entries(specs)) {
    for (const n of [name, ...([] as string[]).concat(spec.alias ?? [])]) known.add(n).add(camel(n));
    const value = args[name];
    // A flag that takes a value but was given none: yargs reports it (requiresArg).
    if (spec.type !== 'boolean' && value !== undefined && (value === '' || (Array.isArray(value) && value.some((v) => v === '')))) return undefined;
  }
  if (Object.keys(args).some((k) => !known.has(k))) return undefined;
  const positionals = (args._ as (string | number)[]).map(String);
  delete args._;
  let p = 0;
  for (const w of positionalsOf(command.command)) {
    if (w.variadic) {
      args[w.name] = positionals.slice(p);
      p = positionals.length;
      if (w.required && args[w.name].length === 0) return undefined;
    } else if (p < positionals.length) {
      const value = positionals[p++]!;
      args[w.name] = command.positionals?.[w.name]?.type === 'number' ? Number(value) : value;
    } else if (w.required) {
      return undefined;
    }
  }
  if (p < positionals.length) return undefined;
  return normalizeArrays(specs, args);
}

/** The yargs-parser options of a set of flags: what yargs itself derives from them. */
function parserOptions(specs: Record<string, OptSpec>): parse.Options {
  const opts = { string: [] as string[], boolean: [] as string[], number: [] as string[], alias: {} as Record<string, string[]>, default: {} as Record<string, unknown> };
  for (const [name, s] of Object.entries(specs)) {
    opts[s.type].push(name);
    if (s.alias) opts.alias[name] = ([] as string[]).concat(s.alias);
    if (s.default !== undefined) opts.default[name] = s.default;
  }
  return opts;
}

