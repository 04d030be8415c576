import { digestOf } from '../digest.js';

/** ChainID(L0) = DiffID(L0); ChainID(L0..Ln) = sha256("<ChainID(L0..Ln-1)> <DiffID(Ln)>"). */
export function chainId(diffIds: string[]): string {
  let chain = '';
  for (const d of diffIds) chain = chain ? digestOf(`${chain} ${d}`) : d;
  return chain;
}
