import type { Writable } from 'node:stream';
import type { PullEvent } from '../lib/pull.js';
import type { PushEvent } from '../lib/remote/pusher.js';
import type { RegistryClient } from '../lib/remote/client.js';
import { humanSize, ndjson, print, type IO } from './io.js';
import { clientFor } from './remote.js';
import type { Args } from './spec.js';

interface Row {
  kind: string;
  digest: string;
  size: number;
  bytes: number;
  status: string;
}

/**
 * Live pull progress for a terminal, like `ctr content fetch` but redrawn in place at most
 * every 150 ms, so it never floods a log: one line per blob (bar, bytes, status), then
 * totals and rate.
 */
export class Progress {
  private rows = new Map<string, Row>();
  private drawn = 0;
  private last = 0;
  private readonly started = Date.now();
  private header = '';

  constructor(
    private readonly out: Writable,
    private readonly width = 30,
    /** What a started blob is doing: downloading (pull) or uploading (push, copy). */
    private readonly verb = 'downloading',
  ) {}

  /** Sets the first line (push and copy have no 'resolved' event). */
  title(text: string): void {
    this.header = text;
  }

  on(e: PullEvent | PushEvent): void {
    if (e.event === 'resolved') this.header = `${e.ref} ${e.digest}`;
    else if (e.event === 'platform') this.header += ` (${e.platform})`;
    else if (e.event === 'blob') {
      const row = this.rows.get(e.digest) ?? { kind: e.kind, digest: e.digest, size: e.size, bytes: 0, status: 'waiting' };
      row.status = e.status === 'start' ? (e.resumedFrom ? 'resuming' : this.verb) : e.status;
      if (e.status === 'start') row.bytes = e.resumedFrom ?? 0;
      if (e.status !== 'start') row.bytes = row.size;
      this.rows.set(e.digest, row);
    } else if (e.event === 'progress') {
      const row = this.rows.get(e.digest);
      if (row) row.bytes = e.bytes;
    }
    this.draw(e.event === 'done');
  }

  private draw(force: boolean): void {
    const now = Date.now();
    if (!force && now - this.last < 150) return;
    this.last = now;
    const lines = [this.header];
    let total = 0;
    let have = 0;
    for (const r of this.rows.values()) {
      total += r.size;
      have += r.bytes;
      const frac = r.size > 0 ? Math.min(1, r.bytes / r.size) : 1;
      const bar = '='.repeat(Math.round(frac * this.width)).padEnd(this.width, ' ');
      lines.push(`${r.kind.padEnd(8)} ${r.digest.slice(7, 19)}  [${bar}] ${humanSize(r.bytes).padStart(8)}/${humanSize(r.size).padEnd(8)} ${r.status}`);
    }
    const secs = Math.max(0.001, (now - this.started) / 1000);
    lines.push(`total: ${humanSize(have)}/${humanSize(total)}  ${humanSize(have / secs)}/s  ${secs.toFixed(1)}s`);
    const clear = this.drawn ? `\x1b[${this.drawn}F\x1b[J` : '';
    this.out.write(`${clear}${lines.join('\n')}\n`);
    this.drawn = lines.length;
  }
}

/**
 * Runs a push or copy with a registry client made from the flags, and prints what it does:
 * `--json` events on stdout, else live progress on a terminal (stderr) and then the digest.
 */
export async function transfer(
  args: Args,
  io: IO,
  command: string,
  title: string,
  work: (client: RegistryClient, onEvent: (e: PushEvent | { event: string }) => void) => Promise<{ digest: string }>,
): Promise<number> {
  const progress = !args.json && io.stderrTTY ? new Progress(io.stderr, 30, 'uploading') : undefined;
  progress?.title(title);
  const client = await clientFor(args, io, command);
  try {
    const result = await work(client, (e) => {
      if (args.json) void print(io, ndjson([e]));
      else if (e.event !== 'platform') progress?.on(e as PushEvent);
    });
    if (!args.json) await print(io, `${result.digest}\n`);
    return 0;
  } finally {
    await client.close();
  }
}
