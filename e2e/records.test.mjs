// End to end, records: one browser posts, edits and deletes private content on a chain bound
// to its person, including a 20 MiB file; the other device of the person — its only way to
// the content the relay, as the writer's browser is closed by then — shows the same records
// and history, and gets the file with progress, identical to the byte.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRelay, startServer } from '../scripts/serve.mjs';
import { endraPage, launchProfile } from './browser.mjs';

const cleanup = [];
after(async () => {
  for (const step of cleanup.reverse()) await step();
});

/** Relay output lines of `mailbox_content_stored`, counted until `count`. */
const contentStored = (count) => {
  let seen = 0;
  return {
    test: (line) => line.includes('event=mailbox_content_stored') && ++seen >= count,
    toString: () => `${count} mailbox_content_stored lines`,
  };
};

/** The records of `window.notes` once there are `count`, waiting on the chain's changes. */
const recordsReach = (page, count) => page.evaluate(async (n) => {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const change = new Promise((resolve) => {
      window.notes.addEventListener('change', resolve, { once: true });
      setTimeout(resolve, 1_000);
    });
    const records = await window.notes.records();
    if (records.length >= n) {
      return records.map((r) => ({
        id: r.id, current: r.current, deleted: r.deleted, erased: r.erased, type: r.type, size: r.size,
        status: r.status, history: r.history.map((h) => h.kind), author: r.author,
      }));
    }
    if (Date.now() > deadline) throw new Error(`records stuck at ${records.length}, expected ${n}`);
    await change;
  }
}, count);

test('a 20 MiB file and edited and erased notes reach the other device through the relay alone', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'endra-relay-'));
  const relay = await startRelay({ dir });
  cleanup.push(async () => {
    await relay.stop();
    await rm(dir, { recursive: true, force: true });
  });
  const server = await startServer({ port: 0, relays: [] });
  cleanup.push(() => server.close());
  const profiles = [await launchProfile(), await launchProfile()];
  cleanup.push(() => profiles[1].close());
  const [a, b] = await Promise.all(profiles.map((p) => endraPage(p.context, { url: server.url, relays: [relay.ws], store: 'records-test' })));

  // Two devices of one person, and a chain bound to it.
  const code = await a.evaluate(async () => {
    window.me = await window.endra.createIdentity({ name: 'Ada', passphrase: 'pass A' });
    window.me.addEventListener('request', (event) => void window.me.approve(event.detail));
    return (await window.me.inviteDevice({ expiresIn: 120_000 })).code;
  });
  await b.evaluate(async (invitation) => {
    window.me = await window.endra.joinAsDevice(invitation, { passphrase: 'pass B', signal: AbortSignal.timeout(60_000) });
    await window.me.until((s) => s.current, { signal: AbortSignal.timeout(60_000) });
  }, code);
  const chain = await a.evaluate(async () => {
    await window.me.until((s) => s.blocks > 0 && s.current, { signal: AbortSignal.timeout(60_000) });
    window.notes = await window.me.createChain();
    return window.notes.id;
  });
  await b.evaluate(async (id) => {
    window.notes = await window.me.openChain(id, { signal: AbortSignal.timeout(60_000) });
  }, chain);

  // A writes: a note edited once, a note erased, a 20 MiB file.
  const written = await a.evaluate(async () => {
    const note = await window.notes.post('first draft');
    await note.edit('second draft');
    const regret = await window.notes.post('to be erased');
    await regret.delete({ erase: true });
    const file = new Uint8Array(20 * 1024 * 1024);
    for (let i = 0; i < file.length; i += 65_536) crypto.getRandomValues(file.subarray(i, i + 65_536));
    const hash = Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', file)), (x) => x.toString(16).padStart(2, '0')).join('');
    const posted = await window.notes.post(new Blob([file], { type: 'application/octet-stream' }));
    const erasedHere = await regret.content().then(() => null, (error) => error.code);
    return { note: note.id, regret: regret.id, file: posted.id, hash, size: posted.size, type: posted.type, erasedHere };
  });
  assert.equal(written.size, 20 * 1024 * 1024);
  assert.equal(written.type, 'application/octet-stream');
  assert.equal(written.erasedHere, 'CONTENT_UNAVAILABLE', 'the writer erased its own copy');
  // The relay fetched every content offered (the two notes' three versions and the file);
  // then A's browser closes: from here on, the relay is B's only source.
  await relay.waitFor(contentStored(4), 120_000);
  await profiles[0].close();

  const records = await recordsReach(b, 3);
  const byId = Object.fromEntries(records.map((r) => [r.id, r]));
  assert.deepEqual(byId[written.note].history, ['created', 'edited']);
  assert.equal(byId[written.note].status, 'missing', 'the block came, the content not yet');
  assert.deepEqual(byId[written.regret].history, ['created', 'deleted']);
  assert.equal(byId[written.regret].erased, true);
  assert.equal(byId[written.regret].current, null);
  assert.equal(byId[written.file].size, 20 * 1024 * 1024);

  const got = await b.evaluate(async ({ note, regret, file }) => {
    const progress = [];
    window.notes.addEventListener('progress', (event) => {
      if (event.detail.status === 'fetching') progress.push(event.detail.done);
    });
    const records = await window.notes.records();
    const find = (id) => records.find((r) => r.id === id);
    const text = await find(note).text();
    const first = await find(note).text({ version: note });
    const erased = await find(regret).content().then(() => null, (error) => error.code);
    const started = performance.now();
    const bytes = await find(file).content();
    const ms = performance.now() - started;
    const hash = Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', bytes)), (x) => x.toString(16).padStart(2, '0')).join('');
    const after = (await window.notes.record(file)).status;
    return { text, first, erased, hash, progress, ms, after };
  }, written);
  assert.equal(got.text, 'second draft');
  assert.equal(got.first, 'first draft', 'every version stays readable');
  assert.equal(got.erased, 'CONTENT_UNAVAILABLE');
  assert.equal(got.hash, written.hash, 'the file arrived identical');
  assert.equal(got.after, 'available');
  assert.ok(got.progress.length > 100, `progress reported piece by piece (${got.progress.length} events)`);
  for (let i = 1; i < got.progress.length; i += 1) assert.ok(got.progress[i] > got.progress[i - 1], 'progress only grows');
  console.log(`# 20 MiB from the relay to the browser: ${(got.ms / 1000).toFixed(1)} s`);
});
