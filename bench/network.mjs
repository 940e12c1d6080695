// Network benchmarks in headless Chromium through a real endra-relay on 127.0.0.1:
// block latency browser → relay → browser (p50/p95/p99 over 500 blocks), reconnection after
// the relay is killed and restarted, and catch-up of a 10,000-block chain by a device that
// joins later. Writes bench/results/network.json. `--smoke`: a few blocks, one restart, no
// js-libp2p reference, nothing written (`npm test` runs it so the bench cannot rot unseen).
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRelay, startServer } from '../scripts/serve.mjs';
import { endraPage, launchProfile, waitForOnline } from '../e2e/browser.mjs';

const smoke = process.argv.includes('--smoke');
const BLOCKS = smoke ? 5 : 500;
const CATCH_UP = smoke ? 100 : 10_000;
const RESTARTS = smoke ? 1 : 5;

const dir = await mkdtemp(join(tmpdir(), 'endra-bench-relay-'));
let relay = await startRelay({ dir });
const server = await startServer({ port: 0, relays: relay.addresses });
// The two browsers of the latency measures; the third (catch-up) starts when it is needed,
// so that an idle browser does not share the two cores with the latency runs.
const profiles = [await launchProfile(), await launchProfile()];

const device = (profile, name) => endraPage(profile.context, { url: server.url, relays: [relay.ws], store: name });

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

try {
  // Latency: one block at a time, the next sent once the previous arrived.
  const a = await device(profiles[0], 'latency-a');
  const b = await device(profiles[1], 'latency-b');
  const invitation = await a.evaluate(async () => {
    window.chain = await window.endra.createChain();
    return window.chain.invite();
  });
  await b.evaluate(async (inv) => {
    window.chain = await window.endra.joinChain(inv);
    window.arrivals = new Map();
    window.wallArrivals = new Map();
    window.chain.addEventListener('block', (e) => {
      window.arrivals.set(e.detail.id, performance.timeOrigin + performance.now());
      window.wallArrivals.set(e.detail.id, Date.now());
    });
  }, invitation);
  const latencies = [];
  for (let i = 0; i < BLOCKS; i++) {
    const { id, sent } = await a.evaluate(async (n) => {
      const sent = performance.timeOrigin + performance.now();
      const block = await window.chain.addBlock(new TextEncoder().encode(`latency ${n}`));
      return { id: block.id, sent };
    }, i);
    const arrived = await b.evaluate(async (blockId) => {
      while (!window.arrivals.has(blockId)) await new Promise((r) => setTimeout(r, 1));
      return window.arrivals.get(blockId);
    }, id);
    latencies.push(arrived - sent);
  }
  latencies.sort((x, y) => x - y);

  // The reference in the same run: plain js-libp2p gossipsub, page → hub → page.
  // Its own npm package, installed only by `npm run bench`: imported only when it runs.
  const reference = smoke
    ? null
    : await (await import('./js-libp2p/measure.mjs')).measureJsLibp2pGossipsub({ profiles, messages: BLOCKS });

  // Reconnection: the relay is killed and started again on the same ports and files; from
  // its listeners being up until the writer's next block reaches the other device (both
  // pages redial by themselves, on their backoff schedules).
  const reconnects = [];
  for (let i = 0; i < RESTARTS; i++) {
    await relay.kill('SIGKILL');
    await Promise.all([a, b].map((p) => waitForOnline(p, false)));
    relay = await startRelay({ dir, ports: relay.ports });
    const listening = Date.now();
    const id = await a.evaluate(async (n) => (await window.chain.addBlock(new TextEncoder().encode(`after restart ${n}`))).id, i);
    const arrived = await b.evaluate(async (blockId) => {
      const deadline = Date.now() + 60_000;
      while (!window.wallArrivals.has(blockId)) {
        if (Date.now() > deadline) throw new Error('the block written after the restart never arrived');
        await new Promise((r) => setTimeout(r, 1));
      }
      return window.wallArrivals.get(blockId);
    }, id);
    reconnects.push(arrived - listening);
  }
  reconnects.sort((x, y) => x - y);

  // Catch-up: a 10,000-block chain, stored by the relay's mailbox, fetched by a new device.
  const chainId = await a.evaluate(async (n) => {
    window.big = await window.endra.createChain();
    const body = new Uint8Array(100).fill(1);
    for (let done = 0; done < n; done += 500) {
      await window.big.addBlocks(Array.from({ length: Math.min(500, n - done) }, () => ({ body })));
    }
    return window.big.id;
  }, CATCH_UP);
  await relay.waitFor(new RegExp(`event=mailbox_stored chain=${chainId} blocks=${CATCH_UP + 1}\\b`), 300_000);
  const bigInvitation = await a.evaluate(() => window.big.invite());
  profiles.push(await launchProfile());
  const c = await device(profiles[2], 'catch-up-c');
  const catchUp = await c.evaluate(async ([inv, n]) => {
    const start = performance.now();
    window.chain = await window.endra.joinChain(inv);
    for await (const block of window.chain.subscribe()) if (block.seq >= n) break;
    return (performance.now() - start) / 1000;
  }, [bigInvitation, CATCH_UP]);

  const results = {
    benchmark: 'browser → endra-relay → browser over WebSocket on 127.0.0.1 (headless Chromium)',
    latency_blocks: BLOCKS,
    latency_p50_ms: Number(percentile(latencies, 50).toFixed(2)),
    latency_p95_ms: Number(percentile(latencies, 95).toFixed(2)),
    latency_p99_ms: Number(percentile(latencies, 99).toFixed(2)),
    latency_target_p50_ms: 5,
    latency_target_p99_ms: 25,
    js_libp2p_gossipsub_reference: {
      what: 'js-libp2p 3.3 + @libp2p/gossipsub 17 (defaults), page → hub in Node → page, WebSocket, same timing',
      ...reference,
    },
    latency_ratio_p50: reference && Number((percentile(latencies, 50) / reference.p50_ms).toFixed(2)),
    latency_ratio_p99: reference && Number((percentile(latencies, 99) / reference.p99_ms).toFixed(2)),
    reconnect_restarts: RESTARTS,
    reconnect_median_ms: Math.round(percentile(reconnects, 50)),
    reconnect_max_ms: Math.round(reconnects[reconnects.length - 1]),
    catch_up_blocks: CATCH_UP,
    catch_up_browser_s: Number(catchUp.toFixed(2)),
    catch_up_target_s: 5,
  };
  if (!smoke) {
    await mkdir(new URL('./results/', import.meta.url), { recursive: true });
    await writeFile(new URL('./results/network.json', import.meta.url), JSON.stringify(results, null, 2) + '\n');
  }
  console.log(JSON.stringify(results, null, 2));
} finally {
  for (const profile of profiles) await profile.close();
  await server.close();
  await relay.stop();
  await rm(dir, { recursive: true, force: true });
}
