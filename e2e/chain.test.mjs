// End to end: the demo page in real Chromium, over the real npm package and IndexedDB.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../scripts/serve.mjs';
import { launchProfile } from './browser.mjs';

let server;
let profile;

before(async () => {
  server = await startServer({ port: 0 });
  profile = await launchProfile();
});

after(async () => {
  await profile?.close();
  await server?.close();
});

const listed = (page) => page.$$eval('#blocks li', (items) => items.map((li) => li.dataset.id));

async function waitForCount(page, count) {
  await page.waitForFunction(
    (n) => document.querySelectorAll('#blocks li').length === n && document.querySelector('#count').textContent === String(n),
    count,
    { timeout: 30_000 },
  );
}

test('a chain of 100 blocks survives a reload in the same order, and a second tab sees it live', async () => {
  const page = await profile.context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(e.message));
  await page.goto(server.url);
  await page.waitForSelector('body[data-ready="true"]');

  await page.click('#create');
  await page.waitForFunction(() => document.querySelector('#chain-id').textContent.startsWith('bafy'));
  const chainId = await page.textContent('#chain-id');
  await waitForCount(page, 1);
  await page.click('#add100');
  await waitForCount(page, 101);
  const before = await listed(page);
  assert.equal(new Set(before).size, 101, 'every block listed once');
  assert.equal(await page.textContent('#error'), '', 'no error shown');

  await page.reload();
  await page.waitForSelector('body[data-ready="true"]');
  await waitForCount(page, 101);
  assert.equal(await page.textContent('#chain-id'), chainId, 'the chain reopened after the reload');
  assert.deepEqual(await listed(page), before, 'the same blocks in the same order after a reload');

  // A second tab of the same profile opens the same chain from IndexedDB.
  const second = await profile.context.newPage();
  second.on('pageerror', (e) => problems.push(e.message));
  await second.goto(server.url);
  await second.waitForSelector('body[data-ready="true"]');
  await waitForCount(second, 101);
  assert.deepEqual(await listed(second), before, 'the second tab lists the same chain in the same order');

  // A block added in the first tab appears in the second without a reload.
  await page.fill('#body', 'from tab one');
  await page.click('#add');
  await waitForCount(page, 102);
  await waitForCount(second, 102);
  assert.deepEqual(await listed(second), await listed(page), 'both tabs agree on the order');
  const text = await second.textContent('#blocks li:last-child');
  assert.match(text, /from tab one/);

  // Both tabs write at once: no corruption, both blocks kept, same order everywhere.
  await Promise.all([
    page.fill('#body', 'concurrent A').then(() => page.click('#add')),
    second.fill('#body', 'concurrent B').then(() => second.click('#add')),
  ]);
  await waitForCount(page, 104);
  await waitForCount(second, 104);
  assert.deepEqual(await listed(second), await listed(page));
  assert.deepEqual(problems, [], 'no uncaught page errors');
});

test('a subscription loop leaves no abort listeners behind on its signal', async () => {
  const page = await profile.context.newPage();
  await page.goto(server.url);
  await page.waitForSelector('body[data-ready="true"]');
  const live = await page.evaluate(async () => {
    const { Endra, Store } = await import('../pkg/index.js');
    const endra = await Endra.start({ store: await Store.memory(), network: false });
    const chain = await endra.createChain();
    // A real AbortSignal whose listener count is watched.
    const controller = new AbortController();
    const { signal } = controller;
    let listeners = 0;
    let most = 0;
    const add = signal.addEventListener.bind(signal);
    const remove = signal.removeEventListener.bind(signal);
    signal.addEventListener = (type, fn, options) => {
      if (type === 'abort') most = Math.max(most, ++listeners);
      add(type, fn, options);
    };
    signal.removeEventListener = (type, fn, options) => {
      if (type === 'abort') listeners--;
      remove(type, fn, options);
    };
    const seen = (async () => {
      let n = 0;
      for await (const block of chain.subscribe({ signal })) if (++n === 51) return block.seq;
    })();
    for (let i = 0; i < 50; i++) await chain.addBlock(new TextEncoder().encode(`b${i}`));
    const last = await seen;
    return { last, listeners, most };
  });
  assert.equal(live.last, 50, 'every block was delivered');
  assert.ok(live.most <= 2, `at most one listener per turn was live at once (saw ${live.most})`);
  assert.ok(live.listeners <= 1, `no listeners pile up (${live.listeners} left after 50 turns)`);
  await page.close();
});

test('bad input gets a typed error with a code', async () => {
  const page = await profile.context.newPage();
  await page.goto(server.url);
  await page.waitForSelector('body[data-ready="true"]');
  const result = await page.evaluate(async () => {
    const { Endra, Store, EndraError } = await import('../pkg/index.js');
    const endra = await Endra.start({ store: await Store.memory(), network: false });
    const codes = {};
    try { await endra.openChain('not-a-cid'); } catch (e) { codes.badId = [e instanceof EndraError, e.code]; }
    try { await endra.openChain('bafyreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku'); } catch (e) { codes.unknown = e.code; }
    const chain = await endra.createChain();
    try { await chain.addBlock('text, not bytes'); } catch (e) { codes.notBytes = e.code; }
    try { await chain.addBlock(new Uint8Array(64 * 1024 + 1)); } catch (e) { codes.tooBig = e.code; }
    const report = await chain.insert([new Uint8Array([1, 2, 3])]);
    codes.garbage = report.rejected[0]?.code;
    codes.count = await chain.count();
    return codes;
  });
  assert.deepEqual(result, {
    badId: [true, 'INVALID_ARGUMENT'],
    unknown: 'NOT_FOUND',
    notBytes: 'INVALID_ARGUMENT',
    tooBig: 'BLOCK_INVALID',
    garbage: 'BLOCK_INVALID',
    count: 1,
  });
});
