// Transfer benchmark in headless Chromium through a real endra-relay on 127.0.0.1: a file
// posted as a record by one device of a person reaches the other device — uploaded to the
// relay's mailbox, verified there segment by segment, fetched and verified again by the
// reader — beside the same bytes sent through a plain WebSocket relay process (no libp2p, no
// encryption, no verification: the reference), in the same run. Writes
// bench/results/transfer.json. `--smoke`: 1 MiB, nothing written (`npm test` runs it).
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRelay, startServer } from '../scripts/serve.mjs';
import { endraPage, launchProfile } from '../e2e/browser.mjs';
import { startWsRelay } from './ws-reference.mjs';

const smoke = process.argv.includes('--smoke');
const SIZE = smoke ? 1024 * 1024 : 20 * 1024 * 1024;

const dir = await mkdtemp(join(tmpdir(), 'endra-bench-relay-'));
const relay = await startRelay({ dir });
const server = await startServer({ port: 0, relays: relay.addresses });
const reference = await startWsRelay();
const profiles = [await launchProfile(), await launchProfile()];
const mbps = (bytes, ms) => Number((bytes / 1e6 / (ms / 1000)).toFixed(1));

try {
  const [a, b] = await Promise.all(profiles.map((p, i) => endraPage(p.context, { url: server.url, relays: [relay.ws], store: `transfer-${i}` })));
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

  // Endra: post on A (sealed into its store, offered to the relay, which fetches and verifies
  // it), then B lists the record and reads it (fetched from the relay, verified, opened).
  const posted = await a.evaluate(async (size) => {
    const file = new Uint8Array(size);
    for (let i = 0; i < size; i += 65_536) crypto.getRandomValues(file.subarray(i, Math.min(size, i + 65_536)));
    const started = performance.timeOrigin + performance.now();
    const record = await window.notes.post(file);
    return { id: record.id, root: record.root, started, posted: performance.timeOrigin + performance.now() };
  }, SIZE);
  await relay.waitFor({ test: (line) => line.includes(`event=mailbox_content_stored`) && line.includes(`root=${posted.root}`) }, 300_000);
  const uploaded = Date.now();
  const read = await b.evaluate(async (id) => {
    const started = performance.timeOrigin + performance.now();
    for (;;) {
      const record = await window.notes.record(id);
      if (record) {
        const bytes = await record.content();
        return { started, done: performance.timeOrigin + performance.now(), size: bytes.length };
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }, posted.id);
  if (read.size !== SIZE) throw new Error(`read ${read.size} of ${SIZE} bytes`);
  const endra = {
    post_ms: Math.round(posted.posted - posted.started),
    upload_to_relay_ms: Math.round(uploaded - posted.started),
    relay_to_reader_ms: Math.round(read.done - read.started),
    end_to_end_ms: Math.round(read.done - posted.started),
  };

  // The reference: the same number of bytes, page → plain WebSocket relay → page.
  const wsPages = await Promise.all(profiles.map(async (profile) => {
    const page = await profile.context.newPage();
    await page.goto(server.url);
    return page;
  }));
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
    bytes: SIZE,
    endra,
    endra_mb_per_s: mbps(SIZE, endra.end_to_end_ms),
    endra_relay_to_reader_mb_per_s: mbps(SIZE, endra.relay_to_reader_ms),
    reference_plain_websocket_ms: referenceMs,
    reference_mb_per_s: mbps(SIZE, referenceMs),
    ratio_to_reference: Number((referenceMs / endra.end_to_end_ms).toFixed(2)),
    target_ratio: 0.5,
  };
  if (!smoke) {
    await mkdir(new URL('./results/', import.meta.url), { recursive: true });
    await writeFile(new URL('./results/transfer.json', import.meta.url), JSON.stringify(results, null, 2) + '\n');
  }
  console.log(JSON.stringify(results, null, 2));
} finally {
  for (const profile of profiles) await profile.close();
  await reference.close();
  await server.close();
  await relay.stop();
  await rm(dir, { recursive: true, force: true });
}
