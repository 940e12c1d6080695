// Browser bench: IndexedDB append of 10,000 blocks in headless Chromium, with raw IndexedDB
// puts of same-sized records measured in the same run as the reference.
// `--smoke`: 500 blocks, results printed but not written (`npm test` runs it so the bench
// cannot rot unseen).
import { writeFile, mkdir } from 'node:fs/promises';
import { startServer } from '../scripts/serve.mjs';
import { launchProfile } from '../e2e/browser.mjs';

const smoke = process.argv.includes('--smoke');
const server = await startServer({ port: 0 });
const profile = await launchProfile();
try {
  const page = await profile.context.newPage();
  await page.goto(new URL(`../bench/bench.html${smoke ? '?blocks=500' : ''}`, server.url).href);
  await page.waitForSelector('body[data-ready="true"]', { state: 'attached' });
  const results = await page.evaluate(() => window.runBench());
  results.benchmark = 'browser IndexedDB append (headless Chromium)';
  if (!smoke) {
    await mkdir(new URL('./results/', import.meta.url), { recursive: true });
    await writeFile(new URL('./results/browser-idb.json', import.meta.url), JSON.stringify(results, null, 2) + '\n');
  }
  console.log(JSON.stringify(results, null, 2));
} finally {
  await profile.close();
  await server.close();
}
