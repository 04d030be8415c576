// The command line has one definition (cmd/spec.ts and each command's spec). yargs parses it
// for help and errors; the hot path parses it with yargs-parser (cmd/fast.ts). Every documented
// flag and every help example goes through both here, and both must give the same arguments.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseCli } from '../../cmd/cli.js';
import { COMMANDS } from '../../cmd/commands.js';
import { fastParse } from '../../cmd/fast.js';
import { camel, commandName, GLOBAL_OPTIONS, positionalsOf, type Args, type Command } from '../../cmd/spec.js';
import { runCli } from '../helpers/cli.js';

const io = { env: {} } as never;

/** The arguments a command reads: its flags (long, camelCase and aliases) and positionals. */
function project(command: Command, args: Args): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries({ ...GLOBAL_OPTIONS, ...command.options })) {
    for (const k of [name, camel(name), ...([] as string[]).concat(spec.alias ?? [])]) out[k] = args[k];
  }
  for (const p of positionalsOf(command.command)) out[p.name] = args[p.name];
  return out;
}

async function both(command: Command, argv: string[]): Promise<void> {
  const fast = fastParse(command, argv);
  const full = await parseCli([commandName(command), ...argv], io);
  assert.equal(full.kind, 'run', `yargs did not take: dist ${commandName(command)} ${argv.join(' ')}`);
  assert.ok(fast, `the fast path did not take: dist ${commandName(command)} ${argv.join(' ')}`);
  if (full.kind !== 'run') return;
  assert.deepEqual(project(command, fast), project(command, full.args), `dist ${commandName(command)} ${argv.join(' ')}`);
}

/** Sample positionals that satisfy a command's syntax. */
function positionals(command: Command): string[] {
  return positionalsOf(command.command)
    .filter((p) => p.required)
    .map((p) => (command.positionals?.[p.name]?.type === 'number' ? '3' : `sample-${p.name}`));
}

/** The words of an example's first dist command, for those a plain split can take. */
function exampleArgv(example: string, name: string): string[] | undefined {
  // Up to the first pipe, list or redirection (`<(...)`, process substitution, stays in).
  const first = example.split(/\s+(?:\||&&|<|>)\s+/)[0]!;
  if (/[$'"`(]/.test(first)) return undefined;
  const words = first.trim().split(/\s+/);
  if (words[0] !== 'dist' || words[1] !== name) return undefined;
  return words.slice(2);
}

test('parse: every flag of every command gives the same arguments through yargs and the fast path', async () => {
  let checked = 0;
  for (const command of COMMANDS) {
    const base = positionals(command);
    await both(command, base);
    for (const [name, spec] of Object.entries({ ...GLOBAL_OPTIONS, ...command.options })) {
      const value = spec.type === 'number' ? '7' : 'some-value';
      const forms: string[][] =
        spec.type === 'boolean' ? [[`--${name}`], [`--no-${name}`], [`--${name}=false`]] : [[`--${name}`, value], [`--${name}=${value}`]];
      for (const alias of ([] as string[]).concat(spec.alias ?? [])) forms.push(alias.length === 1 ? (spec.type === 'boolean' ? [`-${alias}`] : [`-${alias}`, value]) : [`--${alias}`, ...(spec.type === 'boolean' ? [] : [value])]);
      if (spec.array) forms.push([`--${name}`, value, `--${name}`, `${value}2`]);
      for (const form of forms) {
        await both(command, [...form, ...base]);
        await both(command, [...base, ...form]);
        checked++;
      }
    }
  }
  assert.ok(checked > 40, `only ${checked} flag forms`);
});

test('parse: every help example gives the same arguments through yargs and the fast path', async () => {
  let checked = 0;
  for (const command of COMMANDS) {
    for (const [example] of command.examples ?? []) {
      const argv = exampleArgv(example, commandName(command));
      if (!argv) continue;
      await both(command, argv);
      checked++;
    }
  }
  assert.ok(checked >= 12, `only ${checked} examples`);
});

test('parse: what the fast path does not take, yargs reports (unknown flags, missing values and positionals)', async () => {
  const path = COMMANDS.find((c) => commandName(c) === 'path')!;
  assert.equal(fastParse(path, ['--bogus']), undefined);
  const ingest = COMMANDS.find((c) => commandName(c) === 'ingest')!;
  assert.equal(fastParse(ingest, ['--expected-digest']), undefined);
  const r = await runCli(['ingest', '--expected-digest']);
  assert.deepEqual([r.status, r.stderr], [2, "dist ingest: Not enough arguments following: expected-digest\nRun 'dist ingest --help' for usage.\n"]);
  const apply = COMMANDS.find((c) => commandName(c) === 'apply')!;
  assert.equal(fastParse(apply, []), undefined);
  assert.equal(fastParse(apply, ['a', 'b']), undefined);
  // The case that once differed: --no-same-owner is the negation of --same-owner in both.
  assert.equal(fastParse(apply, ['--no-same-owner', 'dir'])!.sameOwner, false);
});
