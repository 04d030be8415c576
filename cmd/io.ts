import { fstatSync, writeSync } from 'node:fs';
import { childProcess, net } from '../lib/lazy.js';
import type { Lending } from '../lib/lend.js';
import type { SocketConstructorOpts } from 'node:net';
import type { Readable, Writable } from 'node:stream';

/** Everything a command may touch at the process edge. Tests pass their own. */
export interface IO {
  stdin: () => Readable;
  stdout: Writable;
  stderr: Writable;
  env: NodeJS.ProcessEnv;
  /** True when stdout is a terminal. */
  isTTY: boolean;
  /** True when stderr is a terminal: live progress is drawn there. */
  stderrTTY?: boolean;
  signal: AbortSignal;
  /**
   * NODE_EXTRA_CA_CERTS, when bin/dist kept node from loading it at start-up: the registry
   * client reads it at its first TLS connection instead.
   */
  extraCaFile?: string;
  /**
   * stdout's file descriptor when `stdout` is the process's own (bin/dist): a command that
   * streams a blob writes lent chunks to it directly (see writeFdSync).
   */
  stdoutFd?: number;
  /** stdin's file descriptor when `stdin` is the process's own (bin/dist): see lendPipe. */
  stdinFd?: number;
}

/**
 * When `fd` is a pipe or socket (`dist fetch ... | dist ingest`), a source that lends what it
 * reads (lib/lend.ts): libuv reads into one reused 1 MiB buffer, where process.stdin would
 * allocate fresh memory per 64 KiB read (measured, 64 MiB through dist ingest: 0.34 -> 0.26 s
 * of CPU for the pair with `cat`). The event loop keeps running, so the ingest lock's refresh
 * timer does too. Anything else (a file, a terminal): undefined, and the caller streams.
 */
export function lendPipe(fd: number, signal?: AbortSignal): Lending | undefined {
  let st;
  try {
    st = fstatSync(fd);
  } catch {
    return undefined;
  }
  if (!st.isFIFO() && !st.isSocket()) return undefined;
  return {
    lend: (onChunk) =>
      new Promise<void>((resolve, reject) => {
        const buffer = Buffer.allocUnsafe(1 << 20);
        const fail = (err: unknown) => {
          socket.destroy();
          reject(err);
        };
        // Node's types omit the constructor's `onread` (documented for net.Socket).
        const options: SocketConstructorOpts & { onread: { buffer: Buffer; callback: (n: number) => boolean } } = {
          fd,
          readable: true,
          writable: false,
          onread: {
            buffer,
            callback: (n) => {
              try {
                onChunk(buffer.subarray(0, n));
              } catch (err) {
                fail(err);
                return false;
              }
              return true;
            },
          },
        };
        const socket = new (net().Socket)(options);
        const onAbort = () => fail(signal!.reason);
        signal?.addEventListener('abort', onAbort, { once: true });
        socket.once('end', () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        });
        socket.once('error', fail);
        socket.resume();
      }),
  };
}

/** F_SETPIPE_SZ, from linux/fcntl.h. */
const F_SETPIPE_SZ = 1031;
/** Linux's limit for a pipe grown by an unprivileged process (/proc/sys/fs/pipe-max-size). */
const WIDE_PIPE = 1 << 20;
/** Below this, growing the pipe costs more (~3 ms: a process) than it saves. */
export const WIDEN_FROM = 8 << 20;

/**
 * Grows the pipe on `fd`, if it is one, to 1 MiB before a large blob goes through it. A pipe
 * holds 64 KiB by default, so writer and reader take turns every 64 KiB. Measured, the seed
 * pipeline on 8 x 64 MiB (2 cores, 5 interleaved runs): 1.54 -> 1.38 s, the system time of
 * the whole pipeline 1.04 -> 0.88 s. Node has no fcntl(2), so perl, which every Debian system
 * has (perl-base is Essential), makes the call on the descriptor it inherits. Where perl is
 * missing or the call fails, the pipe stays as it was.
 */
export function widenPipe(fd: number): void {
  if (process.platform !== 'linux') return;
  try {
    if (!fstatSync(fd).isFIFO()) return;
    childProcess().spawnSync('perl', ['-e', `fcntl(STDOUT, ${F_SETPIPE_SZ}, ${WIDE_PIPE})`], { stdio: ['ignore', fd, 'ignore'], timeout: 2000 });
  } catch {}
}

/**
 * Writes all of `chunk` to `fd` before returning, so the chunk may be reused (lib/lend.ts). A
 * descriptor left non-blocking by another process gives EAGAIN when full: wait 1 ms and retry.
 */
export function writeFdSync(fd: number, chunk: Uint8Array): void {
  for (let at = 0; at < chunk.length; ) {
    try {
      at += writeSync(fd, chunk, at);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EPIPE') goneReaders.add(err as object);
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
      Atomics.wait(pause, 0, 0, 1);
    }
  }
}

const pause = new Int32Array(new SharedArrayBuffer(4));

/** EPIPE errors from writing our stdout (see readerWentAway). */
const goneReaders = new WeakSet<object>();

/**
 * True when `err` says our stdout's reader went away (`dist list | head`): an EPIPE from a
 * write to stdout, or stdout itself broken (a stream pipeline into it). main() ends those
 * quietly with exit 0, as `cat` does; an EPIPE or premature close from anything else (a
 * registry socket, stdin, a helper) is a real error.
 */
export function readerWentAway(err: unknown, io: IO): boolean {
  for (let e: unknown = err; e && typeof e === 'object'; e = (e as { cause?: unknown }).cause) {
    if (goneReaders.has(e)) return true;
  }
  const code = (err as { code?: string } | undefined)?.code;
  if (code !== 'EPIPE' && code !== 'ERR_STREAM_PREMATURE_CLOSE') return false;
  // Only a stdout stream already in use can have broken: never make process.stdout here.
  const out = io.stdoutFd === undefined ? io.stdout : undefined;
  return Boolean(out && (out.destroyed || (out as { errored?: unknown }).errored));
}

/** Writes text and waits for the stream to accept it (backpressure). */
export function write(out: Writable, text: string | Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    out.write(text, (err) => (err ? reject(err) : resolve()));
  });
}

/**
 * Writes a command's text output. On the process's own stdout that is a blocking write to fd 1,
 * so a short command never makes process.stdout: making it loads node:stream, ~2 ms of the
 * ~35 ms `dist path` costs (measured against `node -e 0` with and without touching it).
 */
export function print(io: IO, text: string | Uint8Array): Promise<void> {
  if (io.stdoutFd === undefined) {
    return write(io.stdout, text).catch((err) => {
      if ((err as NodeJS.ErrnoException)?.code === 'EPIPE') goneReaders.add(err);
      throw err;
    });
  }
  writeFdSync(io.stdoutFd, typeof text === 'string' ? Buffer.from(text) : text);
  return Promise.resolve();
}

/** A tab-separated table with a header line, as `awk -F'\t'` and `cut` expect. */
export function table(headers: string[], rows: (string | number)[][]): string {
  return [headers, ...rows].map((r) => `${r.join('\t')}\n`).join('');
}

/** One JSON object per line. */
export function ndjson(objects: unknown[]): string {
  return objects.map((o) => `${JSON.stringify(o)}\n`).join('');
}

/** Decimal human size as go-units HumanSize prints it (the format of containerd's original dist): 33.4MB, 1.2kB. */
export function humanSize(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let i = 0;
  let n = bytes;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${Number(n.toPrecision(4))}${units[i]}`;
}

/** Coarse human duration, go-units HumanDuration style: "3 seconds", "About a minute". */
export function humanDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 1) return 'Less than a second';
  if (s === 1) return '1 second';
  if (s < 60) return `${s} seconds`;
  const m = Math.round(s / 60);
  if (m === 1) return 'About a minute';
  if (m < 60) return `${m} minutes`;
  const h = Math.round(m / 60);
  if (h === 1) return 'About an hour';
  if (h < 48) return `${h} hours`;
  const d = Math.round(h / 24);
  if (d < 14) return `${d} days`;
  if (d < 60) return `${Math.round(d / 7)} weeks`;
  if (d < 730) return `${Math.round(d / 30)} months`;
  return `${Math.round(d / 365)} years`;
}

/** Reads whitespace-separated words from a stream (digests piped from `dist list -q`). */
export async function readWords(input: Readable): Promise<string[]> {
  const chunks: Buffer[] = [];
  for await (const c of input) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8').split(/\s+/).filter(Boolean);
}
