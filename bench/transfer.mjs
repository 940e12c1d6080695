// Records benchmark in headless Chromium through a real endra-relay on 127.0.0.1. First the
// latency of a text message, a plain sealed block beside a record whose content travels
// inline with its block (bench/results/text-latency.json). Then the transfer of a file
// posted as a record by one device of a person reaches the other device — uploaded to the
// relay's mailbox, verified there segment by segment, fetched and verified again by the
// reader, which reads it as soon as it lists the record — beside the same bytes sent through a plain WebSocket relay process (no libp2p, no
// encryption, no verification: the reference), in the same run; then the reader reads the
// file again as a stream from its own store (`stream_from_store_ms`). Writes
// bench/results/transfer.json. `--smoke`: 3 messages a path, 1 MiB, nothing written
// (`npm test` runs it). `--transfer-only`, `--text-only`: one part alone (nothing written);
// `--relay PATH`: another endra-relay binary instead of target/debug/endra-relay —
// `npm run bench` passes the optimised build (`cargo build --profile bench -p endra-relay`,
// target/release/endra-relay), as a relay would be deployed. Each result names the relay.
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRelay, startServer } from '../scripts/serve.mjs';
import { launchBare } from './bare-chromium.mjs';
import { startWsRelay } from './ws-reference.mjs';

const smoke = process.argv.includes('--smoke');
const SIZE = smoke ? 1024 * 1024 : 20 * 1024 * 1024;
const transferOnly = process.argv.includes('--transfer-only');
const textOnly = process.argv.includes('--text-only');
const relayArg = process.argv.indexOf('--relay');
const relayBinary = relayArg > 0 ? process.argv[relayArg + 1] : undefined;
const TEXT_ROUNDS = smoke ? 3 : 200;
// Results of a run that differs from `npm run bench`'s are printed, not written.
const write = !smoke && !transferOnly && !textOnly;
/** How the pages are driven: no DevTools network domain (see bare-chromium.mjs). */
const DRIVER = 'bare Chromium over the DevTools pipe: Target, Page and Runtime only';
/** Which relay binary the numbers are of. */
const relayBuild = relayBinary ?? 'target/debug/endra-relay';

const dir = await mkdtemp(join(tmpdir(), 'endra-bench-relay-'));
const relay = await startRelay({ dir, ...(relayBinary ? { binary: relayBinary } : {}) });
const server = await startServer({ port: 0, relays: relay.addresses });
const reference = await startWsRelay();
// Two browsers with a profile each, driven without DevTools' network domain (see
// bare-chromium.mjs).
const profiles = [await launchBare(), await launchBare()];
const mbps = (bytes, ms) => Number((bytes / 1e6 / (ms / 1000)).toFixed(1));

try {
  const [a, b] = await Promise.all(profiles.map((p, i) => p.endraPage({ url: server.url, relays: [relay.ws], store: `transfer-${i}` })));
  // Two devices of one person, a chain bound to it.
  const code = await a.evaluate(async () => {
    window.me = await window.endra.createIdentity({ name: 'Bench', passphrase: 'p' });
    window.me.addEventListener('request', (event) => void window.me.approve(event.detail));
    return (await window.me.inviteDevice({ expiresIn: 120_000 })).code;
  });
  await b.evaluate(async (invitation) => {
    window.me = await window.endra.joinAsDevice(invitation, { passphrase: 'p', signal: AbortSignal.timeout(60_000) });
    await window.me.until((s) => s.current, { signal: AbortSignal.timeout(60_000) });
  }, code);
  const chain = await a.evaluate(async () => {
    await window.me.until((s) => s.current, { signal: AbortSignal.timeout(60_000) });
    window.notes = await window.me.createChain();
    return window.notes.id;
  });
  await b.evaluate(async (id) => {
    window.notes = await window.me.openChain(id, { signal: AbortSignal.timeout(60_000) });
  }, chain);

  // Text-message latency A → relay → B, one message at a time, the two paths interleaved so
  // that they share the chain's growth: a plain sealed message inside its block (`write`),
  // and a record whose content is offchain and travels inline with its block (`post`). It
  // has arrived when B can show it: the message decrypted, or the record's content verified,
  // decrypted and read. B starts watching before A writes.
  if (!transferOnly) await textLatency(a, b);

  if (!textOnly) await transfer(a, b);
} finally {
  for (const profile of profiles) await profile.close();
  await reference.close();
  await server.close();
  await relay.stop();
  await rm(dir, { recursive: true, force: true });
}

/**
 * The text-message latency part: writes bench/results/text-latency.json (not in smoke runs).
 * @param {import('./bare-chromium.mjs').BarePage} a
 * @param {import('./bare-chromium.mjs').BarePage} b
 */
async function textLatency(a, b) {
  await b.evaluate(() => {
    const decoder = new TextDecoder();
    const seen = new Set();
    const arrived = {
      plain: async (text) => (await window.notes.messages()).some((m) => m.body && decoder.decode(m.body) === text),
      inline: async (text) => {
        for (const record of await window.notes.records()) {
          if (seen.has(record.id) || record.status !== 'available') continue;
          seen.add(record.id);
          if ((await record.text()) === text) return true;
        }
        return false;
      },
    };
    window.arrival = ({ path, text }) => new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${path} message "${text}" never arrived`)), 60_000);
      let done = false;
      const attempt = async () => {
        if (done || !(await arrived[path](text)) || done) return;
        done = true;
        clearTimeout(timer);
        window.notes.removeEventListener('change', attempt);
        resolve(performance.timeOrigin + performance.now());
      };
      window.notes.addEventListener('change', attempt);
      void attempt();
    });
  });
  const latencies = { plain: [], inline: [] };
  const arrivals = { plain: [], inline: [] };
  for (let i = 0; i < TEXT_ROUNDS; i++) {
    for (const path of ['plain', 'inline']) {
      const message = { path, text: `${path} message ${i}` };
      await b.evaluate((m) => {
        // B writes nothing here: its chain's next change is this message's block.
        window.changed = new Promise((resolve) => {
          window.notes.addEventListener('change', () => resolve(performance.timeOrigin + performance.now()), { once: true });
        });
        window.waiting = window.arrival(m);
      }, message);
      const sent = await a.evaluate(async ({ path, text }) => {
        const started = performance.timeOrigin + performance.now();
        if (path === 'plain') await window.notes.write(new TextEncoder().encode(text));
        else await window.notes.post(text);
        return started;
      }, message);
      const [changed, shown] = await b.evaluate(() => Promise.all([window.changed, window.waiting]));
      latencies[path].push(shown - sent);
      arrivals[path].push(changed - sent);
    }
  }
  const summary = (list) => {
    const sorted = [...list].sort((x, y) => x - y);
    const at = (p) => Number(sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))].toFixed(1));
    return { p50_ms: at(50), p95_ms: at(95), p99_ms: at(99) };
  };
  const text = {
    benchmark: 'a text message browser → endra-relay → browser on 127.0.0.1 (headless Chromium): a plain sealed message in its block beside a record whose content is offchain and pushed inline with its block, interleaved in the same run; arrival = the reader can show it',
    relay: relayBuild,
    driver: DRIVER,
    messages_per_path: TEXT_ROUNDS,
    arrived: {
      what: "the block is in the reader's store (inline, its content in the same transaction): the reader's chain reports the change",
      plain_block: summary(arrivals.plain),
      offchain_inline: summary(arrivals.inline),
    },
    shown: {
      what: 'the reader has read it through the API: messages() for the plain message; records() and record.text() for the record',
      plain_block: summary(latencies.plain),
      offchain_inline: summary(latencies.inline),
    },
  };
  text.added_p50_ms = Number((text.arrived.offchain_inline.p50_ms - text.arrived.plain_block.p50_ms).toFixed(1));
  text.added_p50_shown_ms = Number((text.shown.offchain_inline.p50_ms - text.shown.plain_block.p50_ms).toFixed(1));
  text.target_added_p50_ms = 1;
  console.log(JSON.stringify(text, null, 2));
  if (write) {
    await mkdir(new URL('./results/', import.meta.url), { recursive: true });
    await writeFile(new URL('./results/text-latency.json', import.meta.url), JSON.stringify(text, null, 2) + '\n');
  }
}

/**
 * The file transfer part, beside the plain WebSocket reference: writes
 * bench/results/transfer.json (not in smoke runs).
 * @param {import('./bare-chromium.mjs').BarePage} a
 * @param {import('./bare-chromium.mjs').BarePage} b
 */
async function transfer(a, b) {
  // Endra: post on A (sealed into its store, offered to the relay, which fetches and verifies
  // it); B lists the record and reads it (fetched from the relay, verified, opened).
  const posted = await a.evaluate(async (size) => {
    const file = new Uint8Array(size);
    for (let i = 0; i < size; i += 65_536) crypto.getRandomValues(file.subarray(i, Math.min(size, i + 65_536)));
    const started = performance.timeOrigin + performance.now();
    const record = await window.notes.post(file);
    return { id: record.id, root: record.root, started, posted: performance.timeOrigin + performance.now() };
  }, SIZE);
  // B reads as soon as it lists the record, as an app would, while the relay is still
  // taking the file from A: what B fetches from the relay meanwhile is held there and
  // answered as it arrives. The relay's log says when it held the whole file.
  const stored = relay
    .waitFor({ test: (line) => line.includes(`event=mailbox_content_stored`) && line.includes(`root=${posted.root}`) }, 300_000)
    .then(() => Date.now());
  const read = await b.evaluate(async (id) => {
    const started = performance.timeOrigin + performance.now();
    for (;;) {
      const record = await window.notes.record(id);
      if (record) {
        const listed = performance.timeOrigin + performance.now();
        const bytes = await record.content();
        const done = performance.timeOrigin + performance.now();
        // Then read again as a stream, segment by segment, from this device's store.
        let streamed = 0;
        for await (const chunk of record.stream()) streamed += chunk.length;
        const streamMs = performance.timeOrigin + performance.now() - done;
        // The page's wasm memory after all that (it never shrinks once grown).
        const wasm = await (await import('../pkg/wasm/endra.js')).default();
        return { started, listed, done, size: bytes.length, streamed, streamMs, wasmBytes: wasm.memory.buffer.byteLength };
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }, posted.id);
  const uploaded = await stored;
  if (read.size !== SIZE || read.streamed !== SIZE) throw new Error(`read ${read.size} and streamed ${read.streamed} of ${SIZE} bytes`);
  const endra = {
    post_ms: Math.round(posted.posted - posted.started),
    upload_to_relay_ms: Math.round(uploaded - posted.started),
    // When B listed the record and began to read it, and when B had the whole file after
    // the relay had it: B fetches from the relay while the relay still fetches from A.
    listed_by_reader_ms: Math.round(read.listed - posted.started),
    reader_done_after_relay_ms: Math.round(read.done - uploaded),
    end_to_end_ms: Math.round(read.done - posted.started),
    // After: the reader reads it again as a stream (`record.stream()`) from its own store.
    stream_from_store_ms: Math.round(read.streamMs),
    // The reader's wasm memory then, in MiB: what reading a large content left it holding.
    reader_wasm_memory_mib: Number((read.wasmBytes / 1024 / 1024).toFixed(1)),
  };

  // The reference: the same number of bytes, page → plain WebSocket relay → page.
  const wsPages = await Promise.all(profiles.map((profile) => profile.newPage(server.url)));
  await wsPages[1].evaluate((url) => new Promise((resolve) => {
    window.ws = new WebSocket(url);
    window.ws.binaryType = 'arraybuffer';
    window.received = 0;
    window.ws.onmessage = (event) => {
      window.received += event.data.byteLength;
      if (window.received >= window.expected) window.finished = performance.timeOrigin + performance.now();
    };
    window.ws.onopen = resolve;
  }), reference.url);
  await wsPages[1].evaluate((size) => { window.expected = size; }, SIZE);
  await wsPages[0].evaluate((url) => new Promise((resolve) => {
    window.ws = new WebSocket(url);
    window.ws.binaryType = 'arraybuffer';
    window.ws.onopen = resolve;
  }), reference.url);
  const sent = await wsPages[0].evaluate(async (size) => {
    const file = new Uint8Array(size);
    for (let i = 0; i < size; i += 65_536) crypto.getRandomValues(file.subarray(i, Math.min(size, i + 65_536)));
    const started = performance.timeOrigin + performance.now();
    for (let i = 0; i < size; i += 65_536) {
      while (window.ws.bufferedAmount > 4 * 1024 * 1024) await new Promise((resolve) => setTimeout(resolve, 1));
      window.ws.send(file.subarray(i, Math.min(size, i + 65_536)));
    }
    return started;
  }, SIZE);
  const finished = await wsPages[1].evaluate(async () => {
    const deadline = Date.now() + 120_000;
    while (window.finished === undefined) {
      if (Date.now() > deadline) throw new Error(`the reference received ${window.received} bytes`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    return window.finished;
  });
  const referenceMs = Math.round(finished - sent);

  const results = {
    benchmark: 'a file browser → relay → browser on 127.0.0.1 (headless Chromium): Endra records through endra-relay vs plain WebSocket through a relay process',
    relay: relayBuild,
    driver: DRIVER,
    bytes: SIZE,
    endra,
    endra_mb_per_s: mbps(SIZE, endra.end_to_end_ms),
    reference_plain_websocket_ms: referenceMs,
    reference_mb_per_s: mbps(SIZE, referenceMs),
    ratio_to_reference: Number((referenceMs / endra.end_to_end_ms).toFixed(2)),
    target_ratio: 0.5,
  };
  if (write) {
    await mkdir(new URL('./results/', import.meta.url), { recursive: true });
    await writeFile(new URL('./results/transfer.json', import.meta.url), JSON.stringify(results, null, 2) + '\n');
  }
  console.log(JSON.stringify(results, null, 2));
}
