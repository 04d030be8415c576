import { write, type IO } from './io.js';

/**
 * Runs `fn` for each digest, carrying on past failures: each failure is one line on stderr,
 * and the exit status is 1 if any failed (as `ctr content rm` and containerd's original `dist path` do).
 * Errors with a code outside `carryOn` stop the loop.
 */
export async function eachDigest(name: string, digests: string[], io: IO, fn: (digest: string) => Promise<void>, carryOn = ['ENOENT', 'EINVAL']): Promise<number> {
  let status = 0;
  for (const digest of digests) {
    try {
      await fn(digest);
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (!code || !carryOn.includes(code)) throw err;
      await write(io.stderr, `dist ${name}: ${(err as Error).message}\n`);
      status = 1;
    }
  }
  return status;
}
