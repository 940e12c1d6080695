// The js-libp2p gossipsub reference for bench/network.mjs: page A → hub (Node) → page B,
// messages one at a time, timed exactly like Endra's block latency.
import { createServer } from 'node:http';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { startHub } from './hub.mjs';

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

/** Bundles page.js in memory: no build step, no output files. */
async function bundle() {
  const result = await build({
    entryPoints: [fileURLToPath(new URL('./page.js', import.meta.url))],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    write: false,
    logLevel: 'warning',
  });
  return result.outputFiles[0].contents;
}

/**
 * Serves an empty page and the bundle on 127.0.0.1. The pages must not be the demo app,
 * which would start an Endra node of its own next to the reference.
 */
function serve(script) {
  const server = createServer((req, res) => {
    if (req.url === '/page.js') {
      res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' });
      res.end(script);
    } else if (req.url === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end('<!doctype html><meta charset="utf-8"><title>js-libp2p reference</title>');
    } else {
      res.writeHead(404).end();
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve({
      url: `http://127.0.0.1:${server.address().port}/`,
      close: () => new Promise((done) => {
        server.close(done);
        server.closeAllConnections();
      }),
    }));
  });
}

/**
 * Measures js-libp2p gossipsub latency from a page in `profiles[0].context` to one in
 * `profiles[1].context` through a hub in this process: `messages` messages, each sent once
 * the previous one arrived. Resolves to `{ messages, p50_ms, p95_ms, p99_ms }`.
 */
export async function measureJsLibp2pGossipsub({ profiles, messages = 500 }) {
  const server = await serve(await bundle());
  const hub = await startHub();
  const pages = [];
  try {
    const peerIds = [];
    for (const profile of profiles.slice(0, 2)) {
      const page = await profile.context.newPage();
      pages.push(page);
      await page.goto(server.url);
      await page.evaluate(() => import('/page.js'));
      // Resolves once the page has the hub in its mesh.
      peerIds.push(await page.evaluate(([address, id]) => window.startReference(address, id), [hub.multiaddr, hub.peerId]));
    }
    // The hub forwards to its mesh; both pages must be in it before the first message.
    await hub.meshed(peerIds);
    const [a, b] = pages;

    const latencies = [];
    for (let i = 0; i < messages; i++) {
      const id = `latency ${i}`;
      const sent = await a.evaluate((m) => window.ref.publish(m), id);
      const arrived = await b.evaluate((m) => window.ref.waitFor(m), id);
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
    await server.close();
  }
}
