// End to end, relay restarts: the relay is killed (SIGKILL), stopped (SIGINT) or cut off
// (the browser goes offline) in the middle of a stream of writes and comes back on the same
// ports and files. The writer must reconnect by itself, and a device that was never online
// with the writer must then get every block from the relay, in the same order.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRelay, startServer } from '../scripts/serve.mjs';
import { endraPage, launchProfile, waitForCount, waitForOnline } from './browser.mjs';

const cleanup = [];
after(async () => {
  for (const step of cleanup.reverse()) await step();
});

/** Blocks the writer streams: a few dozen milliseconds apart, so the cut lands mid-stream. */
const STREAM = 80;

let server;
async function profileAt(relays, store) {
  if (!server) {
    server = await startServer({ port: 0, relays: [] });
    cleanup.push(() => server.close());
  }
  const profile = await launchProfile();
  cleanup.push(() => profile.close());
  const page = await endraPage(profile.context, { url: server.url, relays, store });
  await waitForOnline(page, true, 20_000);
  return { profile, page };
}

/** A relay output line of `mailbox_stored` with at least `count` blocks. */
const storedAtLeast = (count) => ({
  test: (line) => {
    const match = /event=mailbox_stored .*blocks=(\d+)/.exec(line);
    return match !== null && Number(match[1]) >= count;
  },
  toString: () => `mailbox_stored blocks>=${count}`,
});

/** Starts a chain on the writer's page and a stream of `STREAM` writes, not awaited. */
const startStream = (page) => page.evaluate(async (n) => {
  window.chain = await window.endra.createChain();
  const encoder = new TextEncoder();
  window.stream = (async () => {
    for (let i = 0; i < n; i++) {
      await window.chain.addBlock(encoder.encode(`stream ${i}`));
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  })();
  return window.chain.id;
}, STREAM);

const order = (page) => page.evaluate(async () => (await window.chain.blocks({ limit: 10_000 })).map((b) => b.id));

/**
 * The writer streams; `cut(relay, writer)` cuts it off in the middle and `restore` brings the
 * relay or the network back, returning the relay now serving. Then the writer, on its own, must
 * come back online and hand the relay every block; a new device gets them all from the relay.
 */
async function scenario(name, cut, restore) {
  const dir = await mkdtemp(join(tmpdir(), 'endra-relay-'));
  let relay = await startRelay({ dir });
  cleanup.push(async () => {
    await relay.stop();
    await rm(dir, { recursive: true, force: true });
  });
  const writer = await profileAt([relay.ws], `reconnect-${name}-writer`);
  const chain = await startStream(writer.page);
  await relay.waitFor(storedAtLeast(20));
  await cut(relay, writer);
  await waitForOnline(writer.page, false, 40_000);
  relay = await restore(relay, writer, dir);
  // Every write of the stream returns (bounded: a stuck write fails here, naming the count).
  await writer.page.evaluate(() => Promise.race([
    window.stream,
    new Promise((_, reject) => setTimeout(async () => {
      reject(new Error(`the stream is stuck at ${await window.chain.count()} blocks`));
    }, 60_000)),
  ]));
  // Nothing was reloaded or called: the node redialled the relay by itself.
  await waitForOnline(writer.page, true, 40_000);
  await relay.waitFor(storedAtLeast(STREAM + 1), 40_000);
  const written = await order(writer.page);
  assert.equal(written.length, STREAM + 1);
  await writer.profile.close();

  const reader = await profileAt([relay.ws], `reconnect-${name}-reader`);
  await reader.page.evaluate(async (id) => {
    const invitation = `endra:${btoa(JSON.stringify({ v: 1, chain: id, relays: [] }))}`;
    window.chain = await window.endra.joinChain(invitation, { signal: AbortSignal.timeout(30_000) });
  }, chain);
  await waitForCount(reader.page, STREAM + 1);
  assert.deepEqual(await order(reader.page), written, 'every block, in the same order');
}

/** Restarts the relay on the same ports, key, certificate and mailbox. */
const restart = async (relay, _writer, dir) => {
  const again = await startRelay({ dir, ports: relay.ports });
  assert.equal(again.ws, relay.ws, 'same peer ID on the same address');
  return again;
};

test('a relay killed with SIGKILL mid-stream and restarted: the writer reconnects, nothing is stranded', async () => {
  await scenario('sigkill', (relay) => relay.kill('SIGKILL'), restart);
});

test('a relay stopped with SIGINT mid-stream and restarted: the writer reconnects, nothing is stranded', async () => {
  await scenario('sigint', (relay) => relay.stop(), restart);
});

test('a browser that goes offline mid-stream and back: it reconnects, nothing is stranded', async () => {
  await scenario(
    'offline',
    (_relay, writer) => writer.profile.context.setOffline(true),
    async (relay, writer) => {
      await writer.profile.context.setOffline(false);
      return relay;
    },
  );
});
