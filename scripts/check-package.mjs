// The npm package ships exactly its `files`: every module `index.js` reaches by a relative
// import must be among them, or `import 'endra'` fails for users while every test — which
// imports from the working tree — passes.
import { readFile } from 'node:fs/promises';
import { join, normalize } from 'node:path';

const pkg = new URL('../pkg/', import.meta.url).pathname;
const { files } = JSON.parse(await readFile(join(pkg, 'package.json'), 'utf8'));
const shipped = new Set(files.map((f) => normalize(f)));
const missing = [];
const seen = new Set();
const queue = ['index.js', 'index.d.ts'];
while (queue.length > 0) {
  const file = normalize(queue.pop());
  if (seen.has(file)) continue;
  seen.add(file);
  if (!shipped.has(file)) missing.push(file);
  const text = await readFile(join(pkg, file), 'utf8');
  for (const [, target] of text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)) {
    const resolved = normalize(join(file, '..', target));
    queue.push(resolved);
    // A module's declarations ship beside it when it has some.
    if (resolved.endsWith('.js')) {
      const types = resolved.replace(/\.js$/, '.d.ts');
      try {
        await readFile(join(pkg, types));
        queue.push(types);
      } catch {}
    }
  }
}
if (missing.length > 0) {
  console.error(`pkg/package.json "files" lacks: ${missing.join(', ')}`);
  process.exit(1);
}
console.log(`package files: the ${seen.size} modules index.js reaches all ship`);
