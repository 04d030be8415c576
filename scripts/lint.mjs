// House-style lint that tsc cannot do: layer boundaries (STYLE.md) and honest tests.
// - lib/ never prints, exits, or reads argv/env: only cmd/ owns the process edge.
// - lib/content knows nothing of HTTP; lib/archive nothing of registries.
// - no skipped or todo tests.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const files = (dir) =>
  readdirSync(join(root, dir)).flatMap((n) => {
    const p = join(dir, n);
    return statSync(join(root, p)).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
  });

const rules = [
  { dirs: ['lib'], re: /\bconsole\.|process\.(exit|stdout|stderr|argv|stdin)\b|process\.env\b/, why: 'lib/ must stay quiet: no console, exit, stdio, argv or env' },
  { dirs: ['lib/content', 'lib/archive'], re: /from '(undici|node:https?)'|\/remote\//, why: 'the store and the archive layer know nothing of HTTP' },
  { dirs: ['lib/remote'], re: /\/content\//, why: 'the registry client knows nothing of the store' },
  { dirs: ['test'], re: /\.(skip|todo)\(|\{\s*(skip|todo)\s*:/, why: 'no skipped or todo tests' },
];
let bad = 0;
for (const rule of rules) {
  for (const dir of rule.dirs) {
    let list = [];
    try {
      list = files(dir);
    } catch {
      continue;
    }
    for (const f of list) {
      readFileSync(join(root, f), 'utf8')
        .split('\n')
        .forEach((line, i) => {
          if (rule.re.test(line) && !line.includes('lint-ok')) {
            console.error(`${f}:${i + 1}: ${rule.why}\n    ${line.trim()}`);
            bad++;
          }
        });
    }
  }
}
if (bad) {
  console.error(`lint: ${bad} problem(s)`);
  process.exit(1);
}
