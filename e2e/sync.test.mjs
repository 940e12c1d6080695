// End to end: two browser profiles (two devices) sync a chain through a real endra-relay
// over WebSocket on 127.0.0.1, live and after one of them was closed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRelay, startServer } from '../scripts/serve.mjs';
import { endraPage, launchProfile, waitForCount, write } from './browser.mjs';

let relayDir;
let relay;
let server;
let alice;
let bob;

before(async () => {
  relayDir = await mkdtemp(join(tmpdir(), 'endra-relay-'));
  relay = await startRelay({ dir: relayDir });
  server = await startServer({ port: 0, relays: relay.addresses });
  alice = await launchProfile();
  bob = await launchProfile();
});

after(async () => {
  await alice?.close();
  await bob?.close();
  await server?.close();
  await relay?.stop();
  await rm(relayDir, { recursive: true, force: true });
});

/** A page of `profile` with the package loaded and a node connected to the relay. */
const device = (profile) => endraPage(profile.context, { url: server.url, relays: relay.addresses, store: 'sync-test' });

const order = (page) => page.evaluate(async () => {
  const ids = [];
  let from;
  for (;;) {
    const blocks = await window.chain.blocks({ from, limit: 500 });
    ids.push(...blocks.map((b) => b.id));
    if (blocks.length < 500) return ids;
    from = ids[ids.length - 1];
  }
});

test('two devices exchange blocks through the relay, live and after one was closed', async () => {
  const a = await device(alice);
  const invitation = await a.evaluate(async () => {
    window.chain = await window.endra.createChain();
    return window.chain.invite();
  });
  assert.match(invitation, /^endra:/);

  const b = await device(bob);
  await b.evaluate(async (inv) => {
    window.chain = await window.endra.joinChain(inv);
  }, invitation);

  // Both write at once; both end with every block in the same order.
  await Promise.all([write(a, 'alice', 10), write(b, 'bob', 10)]);
  await waitForCount(a, 21);
  await waitForCount(b, 21);
  assert.deepEqual(await order(b), await order(a), 'same blocks, same order');
  assert.ok((await b.evaluate(() => window.chain.peers())).length > 0, 'bob sees a peer of the chain');

  // Bob closes; Alice writes 50; Bob comes back and catches up from Alice or the mailbox.
  const chainId = await b.evaluate(() => window.chain.id);
  await b.close();
  await write(a, 'while bob was away', 50);
  await waitForCount(a, 71);
  const b2 = await device(bob);
  await b2.evaluate(async (id) => {
    window.chain = await window.endra.openChain(id);
  }, chainId);
  await waitForCount(b2, 71);
  assert.deepEqual(await order(b2), await order(a), 'caught up, same order');
});

test('a device that was never online with the writer gets its blocks from the mailbox', async () => {
  const a = await device(alice);
  const invitation = await a.evaluate(async () => {
    window.chain = await window.endra.createChain();
    const encoder = new TextEncoder();
    await window.chain.addBlocks(Array.from({ length: 30 }, (_, i) => ({ body: encoder.encode(`m${i}`) })));
    return window.chain.invite();
  });
  // The relay reports what its mailbox holds; Alice leaves once it has all 31 blocks.
  const chainId = await a.evaluate(() => window.chain.id);
  await relay.waitFor(new RegExp(`event=mailbox_stored chain=${chainId} blocks=31\\b`));
  const expected = await order(a);
  await a.close();
  const b = await device(bob);
  await b.evaluate(async (inv) => {
    window.chain = await window.endra.joinChain(inv);
  }, invitation);
  await waitForCount(b, 31);
  assert.deepEqual(await order(b), expected);
});
