import { camel, GLOBAL_OPTIONS, positionalsOf, type Args, type Command, type OptSpec } from './spec.js';

/**
 * Parses plain invocations without loading yargs, whose load alone costs more than node's own
 * start-up (measured: node -e 0 93 ms, +70 ms with yargs loaded; dist runs once per layer under
 * xargs). It uses the same option specs as yargs. Anything it does not fully understand
 * (help, unknown or malformed flags, missing positionals) returns undefined, and yargs then
 * parses the same argv and gives the proper help or usage error.
 */
export function fastParse(command: Command, argv: string[]): Args | undefined {
  const specs: Record<string, OptSpec> = { ...GLOBAL_OPTIONS, ...command.options };
  const byName = new Map<string, [string, OptSpec]>();
  for (const [name, spec] of Object.entries(specs)) {
    byName.set(name, [name, spec]);
    for (const a of ([] as string[]).concat(spec.alias ?? [])) byName.set(a, [name, spec]);
  }
  const args: Args = {};
  for (const [name, spec] of Object.entries(specs)) {
    if (spec.default !== undefined) args[name] = spec.default;
    else if (spec.type === 'boolean') args[name] = false;
  }
  const positionals: string[] = [];
  const set = (name: string, spec: OptSpec, raw: string | true): boolean => {
    let value: unknown = raw;
    if (spec.type === 'boolean') {
      if (raw !== true) return false;
    } else {
      if (raw === true) return false;
      if (spec.type === 'number') {
        if (!/^-?\d+(\.\d+)?$/.test(raw)) return false;
        value = Number(raw);
      }
    }
    if (spec.array) args[name] = [...(args[name] ?? []), value];
    else args[name] = value;
    return true;
  };
  for (let i = 0; i < argv.length; i++) {
    const tok = argv[i]!;
    if (tok === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (tok.startsWith('--')) {
      const eq = tok.indexOf('=');
      const key = eq < 0 ? tok.slice(2) : tok.slice(2, eq);
      const hit = byName.get(key);
      if (!hit) return undefined;
      const [name, spec] = hit;
      if (eq >= 0) {
        if (!set(name, spec, tok.slice(eq + 1))) return undefined;
      } else if (spec.type === 'boolean') {
        set(name, spec, true);
      } else {
        const next = argv[++i];
        if (next === undefined || !set(name, spec, next)) return undefined;
      }
    } else if (tok.startsWith('-') && tok.length > 1 && !/^-\d/.test(tok)) {
      const letters = tok.slice(1);
      for (let j = 0; j < letters.length; j++) {
        const hit = byName.get(letters[j]!);
        if (!hit) return undefined;
        const [name, spec] = hit;
        if (spec.type === 'boolean') {
          set(name, spec, true);
        } else {
          const rest = letters.slice(j + 1);
          const value = rest.length ? rest : argv[++i];
          if (value === undefined || !set(name, spec, value)) return undefined;
          break;
        }
      }
    } else {
      positionals.push(tok);
    }
  }
  const wanted = positionalsOf(command.command);
  let p = 0;
  for (const w of wanted) {
    if (w.variadic) {
      args[w.name] = positionals.slice(p);
      p = positionals.length;
      if (w.required && args[w.name].length === 0) return undefined;
    } else if (p < positionals.length) {
      args[w.name] = positionals[p++];
    } else if (w.required) {
      return undefined;
    }
  }
  if (p < positionals.length) return undefined;
  for (const key of Object.keys(args)) args[camel(key)] = args[key];
  return args;
}
