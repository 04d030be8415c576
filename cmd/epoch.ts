import { DistError } from '../lib/errors.js';

/**
 * SOURCE_DATE_EPOCH (reproducible-builds.org): whole seconds since the epoch, or undefined
 * when unset or empty. Errors: EINVAL for anything else.
 */
export function sourceDateEpoch(env: NodeJS.ProcessEnv): number | undefined {
  const v = env.SOURCE_DATE_EPOCH;
  if (v === undefined || v === '') return undefined;
  if (!/^\d+$/.test(v)) throw new DistError('EINVAL', `SOURCE_DATE_EPOCH must be whole seconds since 1970, got ${JSON.stringify(v)}`);
  return Number(v);
}
