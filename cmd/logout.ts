import type { Command } from './spec.js';
import { print } from './io.js';
import { credentialDir } from './login.js';

export const logout: Command = {
  command: 'logout <registry>',
  describe: "remove a registry's credentials from docker's config.json (or its credsStore)",
  positionals: { registry: { describe: 'host[:port]' } },
  examples: [['dist logout localhost:5000', 'forget the credentials']],
  async run(args, io) {
    const { parseLocator } = await import('../lib/remote/locator.js');
    const { removeLogin } = await import('../lib/remote/login.js');
    const { host } = parseLocator(`${args.registry}/dist-login-check`);
    const removed = await removeLogin(await credentialDir(io), host, io.env);
    await print(io, removed ? `Removing login credentials for ${host}\n` : `Not logged in to ${host}\n`);
    return 0;
  },
};
