// End to end, network paths: WebRTC-Direct and WebSocket to the relay, browsers reaching each
// other through /p2p-circuit when the relay keeps no mailbox, and two peered relays.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRelay, startServer } from '../scripts/serve.mjs';
import { endraPage, launchProfile, waitForCount, write } from './browser.mjs';

const cleanup = [];
after(async () => {
  for (const step of cleanup.reverse()) await step();
});

async function relayIn(options = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'endra-relay-'));
  const relay = await startRelay({ dir, ...options });
  cleanup.push(async () => {
    await relay.stop();
    await rm(dir, { recursive: true, force: true });
  });
  return relay;
}

let server;
async function page(relays) {
  if (!server) {
    server = await startServer({ port: 0, relays: [] });
    cleanup.push(() => server.close());
  }
  const profile = await launchProfile();
  cleanup.push(() => profile.close());
  const p = await endraPage(profile.context, { url: server.url, relays, store: 'network-test' });
  // Connected to the relay: Node.start only starts the dial.
  await p.evaluate(async () => {
    if (!window.node.online) {
      await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no connection to the relay in 20 s')), 20_000);
        window.node.addEventListener('connection', () => { clearTimeout(timer); resolve(); }, { once: true });
      });
    }
  });
  return p;
}

const create = (p, blocks) => p.evaluate(async (n) => {
  window.chain = await window.endra.createChain();
  const encoder = new TextEncoder();
  await window.chain.addBlocks(Array.from({ length: n }, (_, i) => ({ body: encoder.encode(`m${i}`) })));
  return window.chain.id;
}, blocks);

/** Joins `chain` knowing only its ID: the page finds its peers through its own relays. */
const join_ = (p, chain) => p.evaluate(async (id) => {
  const invitation = `endra:${btoa(JSON.stringify({ v: 1, chain: id, relays: [] }))}`;
  window.chain = await window.endra.joinChain(invitation, { signal: AbortSignal.timeout(30_000) });
}, chain);


const order = (p) => p.evaluate(async () => (await window.chain.blocks({ limit: 10_000 })).map((b) => b.id));

test('a device on WebRTC-Direct and a device on WebSocket exchange blocks through the relay', async () => {
  const relay = await relayIn();
  assert.ok(relay.webrtc?.includes('/certhash/'), `a WebRTC-Direct address with its certificate hash: ${relay.webrtc}`);
  // Each page knows only one of the relay's addresses, so each connection uses that transport.
  const a = await page([relay.webrtc]);
  const b = await page([relay.ws]);
  const chain = await create(a, 5);
  await join_(b, chain);
  await waitForCount(b, 6);
  await write(b, 'over websocket', 5);
  await waitForCount(a, 11);
  assert.deepEqual(await order(b), await order(a), 'same blocks, same order');
});

test('without a mailbox, devices find each other at the relay and sync over /p2p-circuit', async () => {
  const relay = await relayIn({ mailbox: false });
  const a = await page([relay.ws]);
  const b = await page([relay.ws]);
  const chain = await create(a, 10);
  await join_(b, chain);
  await waitForCount(b, 11);
  await write(b, 'through the circuit', 3);
  await waitForCount(a, 14);
  assert.deepEqual(await order(b), await order(a), 'same blocks, same order');
  const peers = await b.evaluate(() => window.chain.peers());
  assert.ok(peers.includes(await a.evaluate(() => window.node.peerId)), 'A is a direct peer of B');
});

test('devices on two peered relays converge', async () => {
  const relay1 = await relayIn();
  const relay2 = await relayIn({ peers: [relay1.ws] });
  const a = await page([relay1.ws]);
  const b = await page([relay2.ws]);
  const chain = await create(a, 20);
  await join_(b, chain);
  await waitForCount(b, 21);
  await write(b, 'from relay 2', 5);
  await waitForCount(a, 26);
  assert.deepEqual(await order(b), await order(a), 'same blocks, same order');
});

test('a stopped node closes its connection, says so, and refuses network calls with a typed error', async () => {
  const relay = await relayIn();
  const a = await page([relay.ws]);
  const result = await a.evaluate(async (address) => {
    const events = [];
    window.node.addEventListener('connection', (e) => events.push(e.detail.connected));
    const stopping = window.endra.stop();
    const again = window.endra.stop();
    await stopping;
    const same = stopping === again;
    let code = null;
    try {
      await window.node.useRelay(address);
    } catch (e) {
      code = e.code;
    }
    return { online: window.node.online, events, same, code };
  }, relay.ws);
  assert.equal(result.online, false);
  assert.deepEqual(result.events, [false], 'one connection event: the relay is gone');
  assert.ok(result.same, 'stop() twice is one stop');
  assert.equal(result.code, 'NETWORK_STOPPED');
  await relay.waitFor(/event=connection .*connected=false/);
});
