import { openStore, resolveRoot, Store } from '../lib/content/store.js';
import type { IO } from './io.js';

/** The global flags every store command accepts. */
export interface StoreArgs {
  root?: string;
}

/** Opens (creating the OCI layout when missing) the store that flags and env point at. */
export function storeFor(args: StoreArgs, io: IO): Promise<Store> {
  return openStore(resolveRoot(args.root, io.env));
}

/** The store's paths only, with no file system access (for the hot read-only commands). */
export function storePaths(args: StoreArgs, io: IO): Store {
  return new Store(resolveRoot(args.root, io.env));
}
