import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { requireTool } from './cli.js';
import { freePort } from './registry.js';
import { tempDir } from './tmp.js';

type Hook = { after(fn: () => unknown): void };

export interface Squid {
  /** http://127.0.0.1:PORT (no credentials). */
  url: string;
  port: number;
  /** With auth: the proxy URL with the good credentials in it. */
  authUrl?: string;
  /** The access log's lines so far: one per request the proxy handled (CONNECT host:port, GET url). */
  log(): Promise<string[]>;
}

export interface SquidOptions {
  /** Names only the proxy resolves (its own hosts_file), all to 127.0.0.1. */
  hosts?: string[];
  /** Require proxy basic auth with these credentials. */
  auth?: { user: string; password: string };
  /** Refuse CONNECT to these ports (403). */
  denyPorts?: number[];
}

/**
 * Debian's squid as a real forward proxy on a free loopback port, with its own config, hosts
 * file and access log in a temp dir; no cache. Stopped when the test ends.
 */
export async function startSquid(t: Hook, opts: SquidOptions = {}): Promise<Squid> {
  requireTool('squid');
  const dir = await tempDir(t, 'dist-squid-');
  // squid's helpers and logs run as the proxy user.
  await chmod(dir, 0o777);
  const port = await freePort();
  await writeFile(join(dir, 'hosts'), (opts.hosts ?? []).map((h) => `127.0.0.1 ${h}\n`).join(''));
  const lines = [
    `http_port 127.0.0.1:${port}`,
    `pid_filename ${join(dir, 'squid.pid')}`,
    `access_log stdio:${join(dir, 'access.log')}`,
    `cache_log ${join(dir, 'cache.log')}`,
    'cache_store_log none',
    'cache deny all',
    `hosts_file ${join(dir, 'hosts')}`,
    // No DNS here: a name not in hosts_file fails to resolve at once.
    'dns_nameservers 127.0.0.1',
    `coredump_dir ${dir}`,
    'shutdown_lifetime 0 seconds',
    'pinger_enable off',
  ];
  if (opts.denyPorts?.length) lines.push(`acl denied port ${opts.denyPorts.join(' ')}`, 'http_access deny CONNECT denied');
  if (opts.auth) {
    requireTool('htpasswd');
    const users = join(dir, 'users');
    const r = spawnSync('htpasswd', ['-bc', users, opts.auth.user, opts.auth.password], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`htpasswd failed: ${r.stderr}`);
    await chmod(users, 0o644);
    lines.push(`auth_param basic program /usr/lib/squid/basic_ncsa_auth ${users}`, 'acl authed proxy_auth REQUIRED', 'http_access allow authed', 'http_access deny all');
  } else {
    lines.push('http_access allow all');
  }
  await writeFile(join(dir, 'squid.conf'), `${lines.join('\n')}\n`);
  const child: ChildProcess = spawn('squid', ['-N', '-f', join(dir, 'squid.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (c) => (stderr += c));
  const exited = new Promise((r) => child.on('exit', r));
  t.after(async () => {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      await Promise.race([exited, delay(3000)]);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
  for (let i = 0; ; i++) {
    const up = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      }).on('error', () => resolve(false));
    });
    if (up) break;
    if (child.exitCode !== null || i > 400) throw new Error(`squid did not start: ${stderr}`);
    await delay(25);
  }
  const url = `http://127.0.0.1:${port}`;
  const auth = opts.auth;
  return {
    url,
    port,
    authUrl: auth ? `http://${encodeURIComponent(auth.user)}:${encodeURIComponent(auth.password)}@127.0.0.1:${port}` : undefined,
    async log() {
      // squid writes its access log line when a request ends; give a closed tunnel a moment.
      await delay(300);
      try {
        // The start-up probe (a bare connect) logs as transaction-end-before-headers.
        return (await readFile(join(dir, 'access.log'), 'utf8')).split('\n').filter((l) => l && !l.includes('transaction-end-before-headers'));
      } catch {
        return [];
      }
    },
  };
}
