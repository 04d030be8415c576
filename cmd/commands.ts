import { active } from './active.js';
import { apply } from './apply.js';
import { del } from './delete.js';
import { fetch } from './fetch.js';
import { gc } from './gc.js';
import { get } from './get.js';
import { images } from './images.js';
import { pull } from './pull.js';
import { unpack } from './unpack.js';
import { verify } from './verify.js';
import { diff } from './diff.js';
import { commit } from './commit.js';
import { build } from './build.js';
import { resolve } from './resolve.js';
import { tags } from './tags.js';
import { ingest } from './ingest.js';
import { list } from './list.js';
import { path } from './path.js';
import type { Command } from './spec.js';

/** Every command, in the order `dist --help` lists them. */
export const COMMANDS: Command[] = [fetch, ingest, active, list, path, del, get, apply, pull, unpack, images, gc, verify, resolve, tags, diff, commit, build];
