import type { IO } from './io.js';
import { main } from './main.js';

export { main };

/**
 * The process edge: real stdio, env, signals and the exit status. The launcher
 * (cmd/launcher.cts) calls this after loading the bundle.
 */
export function start(argv: string[], opts: { extraCaFile?: string } = {}): void {
  const controller = new AbortController();
  // The first signal aborts the command, which cleans up (locks released, ingests kept) and
  // exits 130; a second one exits at once.
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      if (controller.signal.aborted) process.exit(130);
      controller.abort(new Error(`interrupted by ${sig}`));
    });
  }
  // process.stdout is made on first use: making it sets fd 1 non-blocking, and dist fetch of a
  // blob writes to fd 1 directly with blocking writes (cmd/fetch.ts), so it never touches it.
  let stdout: NodeJS.WriteStream | undefined;
  const getStdout = () => {
    if (!stdout) {
      stdout = process.stdout;
      // Our stdout's reader went away (`dist get ... | head`): exit 0 at once, quietly, as cat
      // does. Any other failure of stdout (EIO, ENOSPC on a file) is an error, one line.
      stdout.on('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'EPIPE') process.exit(0);
        process.stderr.write(`dist: writing stdout: ${err.message}\n`);
        process.exit(1);
      });
    }
    return stdout;
  };
  const io: IO = {
    stdin: () => process.stdin,
    get stdout() {
      return getStdout();
    },
    // process.stderr too is made on first use: making it loads node:stream (~1.5 ms), which
    // dist path and a successful ingest of a file never need.
    get stderr() {
      return process.stderr;
    },
    env: process.env,
    get isTTY() {
      return Boolean(getStdout().isTTY);
    },
    get stderrTTY() {
      return Boolean(process.stderr.isTTY);
    },
    signal: controller.signal,
    extraCaFile: opts.extraCaFile,
    stdoutFd: 1,
    stdinFd: 0,
  };

  main(argv, io).then(
    (status) => {
      process.exitCode = status;
    },
    (err) => {
      process.stderr.write(`dist: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
