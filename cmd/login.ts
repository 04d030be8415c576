import { usageError, type Command } from './spec.js';
import { REMOTE_OPTIONS, clientFor } from './remote.js';
import { print, write, type IO } from './io.js';

/** Where login and logout keep credentials: docker's config directory (lib/remote/auth.ts). */
export async function credentialDir(io: IO): Promise<string> {
  const { dockerConfigDir } = await import('../lib/remote/auth.js');
  const dir = dockerConfigDir(io.env);
  if (!dir) throw usageError('neither DOCKER_CONFIG nor HOME is set: nowhere to keep credentials');
  return dir;
}

export const login: Command = {
  command: 'login <registry>',
  describe: "check credentials against a registry, then keep them in docker's config.json (or its credsStore)",
  positionals: { registry: { describe: 'host[:port]' } },
  options: {
    ...REMOTE_OPTIONS,
    username: { type: 'string', alias: 'u', describe: 'user name' },
    'password-stdin': { type: 'boolean', describe: 'read the password from stdin' },
    password: { type: 'string', alias: 'p', describe: 'password (visible to other users: prefer --password-stdin)', hidden: true },
  },
  examples: [['printf %s "$PASS" | dist login localhost:5000 -u me --password-stdin', 'log in; a wrong password writes nothing']],
  async run(args, io) {
    const { parseLocator } = await import('../lib/remote/locator.js');
    const { checkLogin, saveLogin } = await import('../lib/remote/login.js');
    if (!args.username) throw usageError('--username (-u) is required');
    let password: string | undefined = args.password;
    if (args.passwordStdin) {
      const chunks: Buffer[] = [];
      for await (const c of io.stdin()) chunks.push(c as Buffer);
      password = Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
    } else if (password !== undefined) {
      await write(io.stderr, 'dist login: warning: --password is visible to other users; use --password-stdin\n');
    }
    if (!password) throw usageError('no password: use --password-stdin');
    // A locator needs a repository; the check (GET /v2/, access 'none') never names it.
    const loc = parseLocator(`${args.registry}/dist-login-check`, { plainHttp: Boolean(args.plainHttp) });
    const creds = { username: args.username as string, password };
    const client = await clientFor(args, io, 'login', { get: async (host) => (host === loc.host ? creds : undefined) });
    try {
      await checkLogin(client, loc, io.signal);
    } finally {
      await client.close();
    }
    const where = await saveLogin(await credentialDir(io), loc.host, creds, io.env);
    await print(io, `Login Succeeded${where === 'helper' ? ' (credentials in the credsStore helper)' : ''}\n`);
    return 0;
  },
};
