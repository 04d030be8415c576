import { spawn, spawnSync, type SpawnOptions } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { main } from '../../cmd/main.js';

/** The repo root (tests run from out/test/...). */
export const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
/** The built executable, as users run it. */
export const DIST_BIN = join(REPO, 'bin', 'dist');

export interface RunResult {
  status: number;
  stdout: string;
  stderr: string;
  stdoutBytes: Buffer;
}

export interface RunOptions {
  root?: string;
  stdin?: string | Buffer | Readable;
  env?: NodeJS.ProcessEnv;
  isTTY?: boolean;
}

/**
 * Runs dist in-process through cmd/main.ts, exactly as bin/dist does, with captured stdio.
 * `stdinRead` tells whether the command touched stdin at all.
 */
export async function runCli(args: string[], opts: RunOptions = {}): Promise<RunResult & { stdinRead: boolean }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  stdout.on('data', (c) => out.push(c));
  stderr.on('data', (c) => err.push(c));
  let stdinRead = false;
  const controller = new AbortController();
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, ...opts.env };
  if (opts.root) env.DIST_ROOT = opts.root;
  const status = await main(args, {
    stdin: () => {
      stdinRead = true;
      const s = opts.stdin;
      if (s instanceof Readable) return s;
      return Readable.from(s === undefined ? [] : [typeof s === 'string' ? Buffer.from(s) : s]);
    },
    stdout,
    stderr,
    env,
    isTTY: opts.isTTY ?? false,
    signal: controller.signal,
  });
  stdout.end();
  stderr.end();
  const stdoutBytes = Buffer.concat(out);
  return { status, stdout: stdoutBytes.toString(), stderr: Buffer.concat(err).toString(), stdoutBytes, stdinRead };
}

/** Spawns the real bin/dist. Resolves when it exits. */
export function spawnDist(args: string[], opts: SpawnOptions & { input?: Buffer | string } = {}): Promise<RunResult> {
  return spawnCapture(DIST_BIN, args, opts);
}

export function spawnCapture(cmd: string, args: string[], opts: SpawnOptions & { input?: Buffer | string } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...opts, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (c) => out.push(c));
    child.stderr!.on('data', (c) => err.push(c));
    child.stdin!.on('error', () => {}); // the child may exit without reading stdin
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const stdoutBytes = Buffer.concat(out);
      resolve({ status: code ?? (signal ? 128 : 1), stdout: stdoutBytes.toString(), stderr: Buffer.concat(err).toString(), stdoutBytes });
    });
    if (opts.input !== undefined) child.stdin!.end(opts.input);
    else child.stdin!.end();
  });
}

/** Runs a shell command line; throws with its stderr when it fails. */
export function sh(line: string, opts: SpawnOptions & { input?: string } = {}): string {
  const r = spawnSync('bash', ['-o', 'pipefail', '-c', line], { ...opts, input: opts.input, encoding: 'utf8', maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`command failed (${r.status}): ${line}\n${r.stderr}`);
  return r.stdout as string;
}

/**
 * Fails loudly when a tool the test needs is missing: CI must install it (make system-deps).
 */
export function requireTool(name: string): string {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    const p = join(dir, name);
    if (existsSync(p)) return p;
  }
  throw new Error(`${name} is not installed; run 'make system-deps' (as root) to install it`);
}

/** The environment for shell pipelines: bin/dist first on PATH, no DIST_ROOT (./.content). */
export function shellEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${join(REPO, 'bin')}:${process.env.PATH}`, ...extra };
  delete env.DIST_ROOT;
  return env;
}
