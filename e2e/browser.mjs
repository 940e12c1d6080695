// Shared launch of the system Chromium through playwright-core (no browser download).
import { chromium } from 'playwright-core';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--headless=new',
  '--disable-gpu',
  '--disable-dev-shm-usage',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  // WebRTC-Direct to a relay on 127.0.0.1: allow loopback ICE candidates and do not hide
  // local addresses behind mDNS names.
  '--allow-loopback-in-peer-connection',
  '--disable-features=WebRtcHideLocalIpsWithMdns',
];

/** A persistent Chromium profile in a fresh directory: `{ context, close }`. */
export async function launchProfile() {
  const dir = await mkdtemp(join(tmpdir(), 'endra-e2e-'));
  const context = await chromium.launchPersistentContext(dir, {
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
  });
  return {
    context,
    close: async () => {
      await context.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Waits, event-driven, until the page's `window.chain` holds `count` blocks (30 s at most). */
export const waitForCount = (page, count) => page.evaluate(async (n) => {
  const signal = AbortSignal.timeout(30_000);
  try {
    for await (const block of window.chain.subscribe({ signal })) {
      if (block.seq + 1 >= n) return;
    }
  } finally {
    if (signal.aborted) throw new Error(`chain stuck at ${await window.chain.count()} blocks, expected ${n}`);
  }
}, count);

/**
 * Waits, event-driven, until the page's `window.node.online` is `wanted` (`timeout` ms at
 * most): it changes with the node's `connection` events and the browser's `online`/`offline`.
 */
export const waitForOnline = (page, wanted, timeout = 30_000) => page.evaluate(([w, t]) => new Promise((resolve, reject) => {
  if (window.node.online === w) return resolve();
  const targets = [[window.node, 'connection'], [window, 'online'], [window, 'offline']];
  const stop = () => {
    clearTimeout(timer);
    for (const [target, type] of targets) target.removeEventListener(type, check);
  };
  const check = () => {
    if (window.node.online !== w) return;
    stop();
    resolve();
  };
  const timer = setTimeout(() => {
    stop();
    reject(new Error(`node.online still ${!w} after ${t} ms`));
  }, t);
  for (const [target, type] of targets) target.addEventListener(type, check);
}), [wanted, timeout]);

/** Writes `count` blocks `<prefix> <i>` to the page's `window.chain`, one at a time. */
export const write = (page, prefix, count) => page.evaluate(async ([p, n]) => {
  const encoder = new TextEncoder();
  for (let i = 0; i < n; i++) await window.chain.addBlock(encoder.encode(`${p} ${i}`));
}, [prefix, count]);

/**
 * A new page of `context` at `url` (a page of the demo server) with the package's module as
 * `window.lib` and an `Endra` context over the IndexedDB store named `store`, its node using
 * `relays` (and the further `Endra.start` options `options`), as `window.endra` (its node
 * also as `window.node`), and `window.waitFor`. Page errors are printed.
 */
export async function endraPage(context, { url, relays, store, options = {} }) {
  const page = await context.newPage();
  page.on('pageerror', (e) => console.error('page error:', e.message));
  if (process.env.ENDRA_PAGE_LOG) page.on('console', (m) => console.error(`page ${m.type()}:`, m.text()));
  await page.goto(url);
  await page.waitForSelector('body[data-ready="true"]', { state: 'attached' });
  await page.evaluate(startEndra, [relays, store, options]);
  return page;
}

/**
 * What `endraPage` runs in the page (`[relays, store, options]`): the package's module as
 * `window.lib`, an `Endra` context as `window.endra` (its node as `window.node`), and the
 * helpers `window.waitFor`, `window.keepErrors`, `window.pageState`. A driver other than
 * Playwright (`bench/bare-chromium.mjs`) evaluates it as well.
 */
export const startEndra = async ([addresses, name, more]) => {
  const lib = await import('../pkg/index.js');
  window.lib = lib;
  window.endra = await lib.Endra.start({ ...more, store: name, relays: addresses });
  window.node = window.endra.node;
  // Resolves with `check()`'s first result other than `undefined`, checking at once and
  // after each `type` event of `target` (listening before reading, so no change is
  // missed); rejects after `timeout` ms naming `label` — and what `describe()` then says,
  // if given — so a stuck test says where and in what state. Only the events wake it: a
  // change that comes without its event fails the test.
  // What a stuck wait reports: its peer ID, every chain in its store with its block count, and
  // the `error` events of the handles given to `keepErrors` (nobody sees them otherwise).
  window.errors = [];
  window.keepErrors = (target) => {
    target.addEventListener('error', (e) => window.errors.push(`${e.detail?.code ?? ''} ${e.detail?.message ?? e.detail}`));
    return target;
  };
  window.pageState = async () => {
    const counts = {};
    for (const id of await window.endra.store.chains()) counts[id.slice(-8)] = await (await window.endra.openChain(id)).count();
    return `peer …${window.node.peerId.slice(-8)}, chains ${JSON.stringify(counts)}, errors ${JSON.stringify(window.errors)}, online ${window.node.online}`;
  };
  window.waitFor = async (label, target, type, check, { timeout = 60_000, describe } = {}) => {
    const deadline = Date.now() + timeout;
    for (;;) {
      let timer;
      let wake;
      const change = new Promise((resolve) => {
        wake = resolve;
        target.addEventListener(type, resolve, { once: true });
        timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
      });
      try {
        const value = await check();
        if (value !== undefined) return value;
        if (Date.now() >= deadline) {
          const state = describe ? ` (${await describe().catch((e) => `describe failed: ${e.message}`)})` : '';
          throw new Error(`${label}: not reached after ${timeout} ms${state}`);
        }
        await change;
      } finally {
        clearTimeout(timer);
        target.removeEventListener(type, wake);
      }
    }
  };
};
