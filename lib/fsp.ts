// node:fs/promises, loaded at its first use. A static import of the module loads it (and the
// readline and stream modules it pulls in) at start-up in every process, ~1-3 ms measured,
// while short commands such as `dist path` never call it. In the bundle these wrappers read
// fs.promises (a lazy getter) only when called.
import { promises as fsp } from 'node:fs';

type Fsp = typeof fsp;

function lazy<K extends keyof Fsp>(name: K): Fsp[K] {
  return ((...args: unknown[]) => (fsp[name] as (...a: unknown[]) => unknown)(...args)) as Fsp[K];
}

export const link = lazy('link');
export const mkdir = lazy('mkdir');
export const open = lazy('open');
export const readFile = lazy('readFile');
export const readdir = lazy('readdir');
export const rename = lazy('rename');
export const rm = lazy('rm');
export const stat = lazy('stat');
export const unlink = lazy('unlink');
export const writeFile = lazy('writeFile');
