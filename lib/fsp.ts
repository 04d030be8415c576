// Promise forms of the node:fs calls dist uses, over the callback API. node:fs/promises costs
// ~2 ms to load (it pulls in readline, file streams and more: profiled in a 32 KiB dist
// ingest), which every process that touched the store paid; the callback API is in node:fs,
// loaded already. Same arguments, results and errors as node:fs/promises.
import * as fs from 'node:fs';

type Fsp = typeof fs.promises;

function viaCallback<K extends keyof Fsp & keyof typeof fs>(name: K): Fsp[K] {
  const fn = fs[name] as (...args: unknown[]) => void;
  return ((...args: unknown[]) =>
    new Promise((resolve, reject) => fn(...args, (err: Error | null, value: unknown) => (err ? reject(err) : resolve(value))))) as Fsp[K];
}

export const link = viaCallback('link');
export const mkdir = viaCallback('mkdir');
export const readFile = viaCallback('readFile');
export const readdir = viaCallback('readdir');
export const rename = viaCallback('rename');
export const rm = viaCallback('rm');
export const stat = viaCallback('stat');
export const unlink = viaCallback('unlink');
export const writeFile = viaCallback('writeFile');
