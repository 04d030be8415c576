import bcrypt from 'bcryptjs';
import { DistError } from '../errors.js';
import { crypto } from '../lazy.js';

/** A bcrypt hash as `htpasswd -B` writes it ($2y$), or as other tools do ($2a$, $2b$). */
const BCRYPT = /^\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}$/;

/**
 * Basic-auth users from an htpasswd file of bcrypt entries (`user:$2y$05$...`, what Debian's
 * `htpasswd -B` writes; distribution accepts only bcrypt too). Other hash kinds (MD5 apr1,
 * SHA1, crypt) are refused when the file is read rather than silently never matching.
 *
 * A bcrypt check costs milliseconds of CPU by design, and a pull makes dozens of requests,
 * each with the same header: a header that checked out once is remembered (by its SHA-256,
 * never in clear) for the life of the process.
 */
export class Htpasswd {
  private readonly good = new Set<string>();

  private constructor(private readonly users: Map<string, string>) {}

  /** Parses the file's text. Errors: EINVAL naming the line that is not a bcrypt entry. */
  static parse(text: string, file: string): Htpasswd {
    const users = new Map<string, string>();
    text.split('\n').forEach((raw, i) => {
      const line = raw.trim();
      if (!line || line.startsWith('#')) return;
      const colon = line.indexOf(':');
      const hash = line.slice(colon + 1);
      if (colon <= 0 || !BCRYPT.test(hash)) {
        throw new DistError('EINVAL', `${file}:${i + 1}: not a bcrypt entry (use htpasswd -B)`);
      }
      users.set(line.slice(0, colon), hash);
    });
    if (users.size === 0) throw new DistError('EINVAL', `${file}: no users`);
    return new Htpasswd(users);
  }

  /** True when `authorization` is Basic credentials of a listed user with the right password. */
  async check(authorization: string | undefined): Promise<boolean> {
    if (!authorization?.startsWith('Basic ')) return false;
    const key = crypto().createHash('sha256').update(authorization).digest('hex');
    if (this.good.has(key)) return true;
    const decoded = Buffer.from(authorization.slice(6).trim(), 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) return false;
    const hash = this.users.get(decoded.slice(0, colon));
    if (!hash) return false;
    const ok = await bcrypt.compare(decoded.slice(colon + 1), hash);
    if (ok) this.good.add(key);
    return ok;
  }
}
