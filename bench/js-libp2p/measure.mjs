// The js-libp2p gossipsub reference for bench/network.mjs: page A → hub (Node) → page B,
// 500 messages one at a time, timed exactly like Endra's block latency.
import { build } from 'esbuild';
import { referenceNode, TOPIC } from './node.js';

const here = new URL('.', import.meta.url).pathname;
const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

/** Resolves once `check()` is true, checking every 20 ms (setup only, not on the measured path). */
async function until(check, what, timeout = 20_000) {
  const deadline = Date.now() + timeout;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`js-libp2p reference: ${what} within ${timeout} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Measures js-libp2p gossipsub latency between a page in `profiles[0]` and one in
 * `profiles[1]` through a hub in this process. `url` is any page of the bench server (it
 * serves this directory). Resolves to `{ messages, p50_ms, p95_ms, p99_ms }`.
 */
export async function measureJsLibp2pGossipsub({ profiles, url, messages = 500 }) {
  await build({
    entryPoints: [`${here}page.js`],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    outfile: `${here}dist/page.js`,
    logLevel: 'warning',
  });
  const hub = await referenceNode({ listen: ['/ip4/127.0.0.1/tcp/0/ws'] });
  hub.services.pubsub.subscribe(TOPIC);
  const hubAddress = hub.getMultiaddrs()[0].toString();
  const pages = [];
  try {
    for (const profile of profiles.slice(0, 2)) {
      const page = await profile.context.newPage();
      await page.goto(url);
      await page.evaluate(async (src) => { await import(src); }, new URL('/bench/js-libp2p/dist/page.js', url).href);
      page.peerId = await page.evaluate((address) => window.startReference(address), hubAddress);
      pages.push(page);
    }
    const [a, b] = pages;
    // The hub forwards to its mesh; wait until both pages are in it.
    await until(() => {
      const mesh = hub.services.pubsub.getMeshPeers(TOPIC).map(String);
      return mesh.includes(a.peerId) && mesh.includes(b.peerId);
    }, 'the hub meshed with both pages');
    await until(() => a.evaluate(() => window.ref && true), 'page A ready');

    const latencies = [];
    for (let i = 0; i < messages; i++) {
      const id = `m${i}`;
      const sent = await a.evaluate(async (m) => {
        const sent = performance.timeOrigin + performance.now();
        await window.ref.publish(m);
        return sent;
      }, id);
      const arrived = await b.evaluate(async (m) => {
        while (!window.ref.arrivals.has(m)) await new Promise((r) => setTimeout(r, 1));
        return window.ref.arrivals.get(m);
      }, id);
      latencies.push(arrived - sent);
    }
    latencies.sort((x, y) => x - y);
    return {
      messages,
      p50_ms: Number(percentile(latencies, 50).toFixed(2)),
      p95_ms: Number(percentile(latencies, 95).toFixed(2)),
      p99_ms: Number(percentile(latencies, 99).toFixed(2)),
    };
  } finally {
    for (const page of pages) {
      await page.evaluate(() => window.ref?.stop()).catch(() => {});
      await page.close();
    }
    await hub.stop();
  }
}
