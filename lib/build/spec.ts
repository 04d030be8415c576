import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse } from 'yaml';
import { DistError, sysCode } from '../errors.js';
import type { ConfigChanges } from './image.js';

/** One `copy` pair: a host path (absolute, resolved against the spec's directory) and an image path. */
export interface CopyPair {
  src: string;
  dest: string;
}

/** A target of a genoci-style spec, checked. Host paths are absolute. */
export interface Target {
  name: string;
  base: string;
  expand?: string;
  copy: CopyPair[];
  run?: string;
  install: string[];
  config: ConfigChanges;
  pre?: string;
  post?: string;
  network: 'none' | 'host';
}

export interface BuildSpec {
  /** The spec file (absolute). */
  path: string;
  /** Targets in file order. */
  targets: Target[];
}

const KEYS = ['base', 'expand', 'copy', 'run', 'install', 'entrypoint', 'cmd', 'env', 'workdir', 'user', 'labels', 'pre', 'post', 'network'];
const TARGET_NAME = /^[a-z0-9]+(?:[._-][a-z0-9]+)*$/;

/**
 * Reads and checks a genoci-style YAML spec: a map of targets, each with a `base` and actions.
 * Every problem is one line naming the file, the target and the key.
 * Errors: ENOENT (no spec file), EINVAL (bad YAML, unknown key, missing base, bad action).
 */
export function readSpec(file: string): BuildSpec {
  const path = resolve(file);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new DistError(sysCode(err) === 'ENOENT' ? 'ENOENT' : 'EIO', `${file}: ${sysCode(err) === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = parse(text, { uniqueKeys: true });
  } catch (err) {
    throw new DistError('EINVAL', `${file}: not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  if (!isMap(doc) || Object.keys(doc).length === 0) throw new DistError('EINVAL', `${file}: expected a map of targets`);
  const dir = dirname(path);
  const targets = Object.entries(doc).map(([name, body]) => checkTarget(file, dir, name, body));
  return { path, targets };
}

function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkTarget(file: string, dir: string, name: string, body: unknown): Target {
  const bad = (key: string, why: string) => new DistError('EINVAL', `${file}: target ${JSON.stringify(name)}: ${key}: ${why}`);
  if (!TARGET_NAME.test(name)) throw bad('name', 'a target name is lowercase letters, digits and . _ - (it names an image)');
  if (!isMap(body)) throw bad('body', 'expected a map of base and actions');
  for (const key of Object.keys(body)) if (!KEYS.includes(key)) throw bad(key, `unknown key (known: ${KEYS.join(', ')})`);
  const str = (key: string): string | undefined => {
    const v = body[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string' || v.trim() === '') throw bad(key, 'expected a non-empty string');
    return v;
  };
  const base = str('base');
  if (!base) throw bad('base', 'missing (empty, an image in the store, or an earlier target)');
  const strings = (key: string): string[] => {
    const v = body[key];
    if (v === undefined || v === null) return [];
    const list = Array.isArray(v) ? v : [v];
    if (list.length === 0 || list.some((x) => typeof x !== 'string' || x.trim() === '')) throw bad(key, 'expected a string or a list of strings');
    return list as string[];
  };
  const copy = strings('copy').map((pair) => {
    const parts = pair.trim().split(/\s+/);
    if (parts.length !== 2) throw bad('copy', `expected "src dest", got ${JSON.stringify(pair)}`);
    return { src: resolve(dir, parts[0]!), dest: parts[1]! };
  });
  const install = strings('install').map((p) => {
    if (!p.endsWith('.deb')) throw bad('install', `expected .deb files, got ${JSON.stringify(p)}`);
    return resolve(dir, p);
  });
  const network = str('network') ?? 'none';
  if (network !== 'none' && network !== 'host') throw bad('network', `expected none or host, got ${JSON.stringify(network)}`);
  const expand = str('expand');
  const t: Target = {
    name,
    base,
    expand: expand ? resolve(dir, expand) : undefined,
    copy,
    run: str('run'),
    install,
    config: configChanges(body, bad),
    pre: str('pre'),
    post: str('post'),
    network,
  };
  const acts = t.expand || t.copy.length || t.run || t.install.length || t.pre || t.post || Object.keys(t.config).length;
  if (!acts) throw bad('actions', 'a target needs at least one action');
  return t;
}

/**
 * The config keys of a spec target or a `--config` object: entrypoint and cmd (a string,
 * split like a shell would, or a list), env (KEY=VALUE list or a map), workdir, user, labels.
 * `bad(key, why)` makes the error.
 */
export function configChanges(obj: Record<string, unknown>, bad: (key: string, why: string) => Error): ConfigChanges {
  const out: ConfigChanges = {};
  for (const key of ['entrypoint', 'cmd'] as const) {
    const v = obj[key];
    if (v === undefined || v === null) continue;
    if (typeof v === 'string') out[key] = shellWords(v, (why) => bad(key, why));
    else if (Array.isArray(v) && v.every((x) => typeof x === 'string')) out[key] = v as string[];
    else throw bad(key, 'expected a string or a list of strings');
  }
  const env = obj.env;
  if (env !== undefined && env !== null) {
    if (Array.isArray(env) && env.every((e) => typeof e === 'string' && /^[^=\s]+=/.test(e))) out.env = env as string[];
    else if (isMap(env) && Object.values(env).every((v) => ['string', 'number', 'boolean'].includes(typeof v))) out.env = Object.entries(env).map(([k, v]) => `${k}=${String(v)}`);
    else throw bad('env', 'expected a list of KEY=VALUE or a map');
  }
  for (const key of ['workdir', 'user'] as const) {
    const v = obj[key];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'string') throw bad(key, 'expected a string');
    out[key] = v;
  }
  const labels = obj.labels;
  if (labels !== undefined && labels !== null) {
    if (!isMap(labels) || !Object.values(labels).every((v) => ['string', 'number', 'boolean'].includes(typeof v))) throw bad('labels', 'expected a map of strings');
    out.labels = Object.fromEntries(Object.entries(labels).map(([k, v]) => [k, String(v)]));
  }
  return out;
}

/** Splits a command line into words: whitespace separates, '...' and "..." quote, \ escapes. */
function shellWords(line: string, bad: (why: string) => Error): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote) {
      if (c === quote) quote = undefined;
      else if (c === '\\' && quote === '"' && i + 1 < line.length) word += line[++i];
      else word += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      inWord = true;
    } else if (c === '\\' && i + 1 < line.length) {
      word += line[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else {
      word += c;
      inWord = true;
    }
  }
  if (quote) throw bad(`unterminated ${quote} quote`);
  if (inWord) words.push(word);
  if (words.length === 0) throw bad('empty command');
  return words;
}

/**
 * The targets to build, in dependency order: the wanted ones (all by default) and the targets
 * they are based on. A base that is not a target is an image expected in the store.
 * Errors: EINVAL for a cycle (named) or an unknown wanted target.
 */
export function buildOrder(spec: BuildSpec, wanted: string[]): Target[] {
  const byName = new Map(spec.targets.map((t) => [t.name, t]));
  for (const w of wanted) if (!byName.has(w)) throw new DistError('EINVAL', `${spec.path}: no target named ${JSON.stringify(w)}`);
  const order: Target[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (t: Target, path: string[]) => {
    const s = state.get(t.name);
    if (s === 'done') return;
    if (s === 'visiting') {
      const cycle = [...path.slice(path.indexOf(t.name)), t.name];
      throw new DistError('EINVAL', `${spec.path}: target ${JSON.stringify(t.name)}: base: cycle ${cycle.join(' -> ')}`);
    }
    state.set(t.name, 'visiting');
    const dep = byName.get(t.base);
    if (dep) visit(dep, [...path, t.name]);
    state.set(t.name, 'done');
    order.push(t);
  };
  for (const t of wanted.length ? wanted.map((w) => byName.get(w)!) : spec.targets) visit(t, []);
  return order;
}
