import { main } from './main.js';

export { main };

/**
 * The process edge: real stdio, env, signals and the exit status. The launcher
 * (cmd/launcher.cts) calls this after loading the bundle.
 */
export function start(argv: string[], opts: { extraCaFile?: string } = {}): void {
  const controller = new AbortController();
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => controller.abort(new Error(`interrupted by ${sig}`)));
  }
  // A closed stdout (`dist get ... | head`) must not crash with an unhandled EPIPE.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
  });

  main(argv, {
    stdin: () => process.stdin,
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    isTTY: Boolean(process.stdout.isTTY),
    stderrTTY: Boolean(process.stderr.isTTY),
    signal: controller.signal,
    extraCaFile: opts.extraCaFile,
    stdoutFd: 1,
  }).then(
    (status) => {
      process.exitCode = status;
    },
    (err) => {
      process.stderr.write(`dist: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
