// End to end, records: one browser posts, edits and deletes private content on a chain bound
// to its person, including a 20 MiB file; the other device of the person gets the notes'
// texts inline with their blocks and, reopening the chain, fetches the file by itself — its
// only way to it the relay, as the writer's browser is closed by then — shows the same records
// and history, and gets the file with progress, identical to the byte, although it reloads
// in the middle of the transfer (which resumes from the segments already verified).
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

/** The relay's output line saying it stored the content of root `root`. */
const contentStored = (root) => ({
  test: (line) => line.includes('event=mailbox_content_stored') && line.includes(`root=${root}`),
  toString: () => `mailbox_content_stored root=${root}`,
});

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

test('a 20 MiB file and edited and erased notes reach the other device through the relay alone, across a reload', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'endra-relay-'));
  const relay = await startRelay({ dir });
  cleanup.push(async () => {
    await relay.stop();
    await rm(dir, { recursive: true, force: true });
  });
  const server = await startServer({ port: 0, relays: [] });
  cleanup.push(() => server.close());
  const profiles = [await launchProfile(), await launchProfile()];
  // A's profile closes in the middle of the test; closing it again is harmless.
  for (const profile of profiles) cleanup.push(() => profile.close().catch(() => {}));
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
  /** Opens the chain on B's page and records its content progress in `window.progress`. */
  const openNotes = (page) => page.evaluate(async (id) => {
    window.notes = await window.me.openChain(id, { signal: AbortSignal.timeout(60_000) });
    window.progress = [];
    window.notes.addEventListener('progress', (event) => window.progress.push(event.detail));
  }, chain);
  await openNotes(b);
  // B listens to the chain's record events from the start, as an app would.
  await b.evaluate(() => {
    window.told = [];
    window.stopTelling = new AbortController();
    window.telling = (async () => {
      for await (const event of window.notes.recordEvents({ signal: window.stopTelling.signal })) {
        window.told.push(event);
        window.dispatchEvent(new Event('told'));
      }
    })().catch((error) => window.told.push({ error: error.code ?? error.message }));
  });

  /** A new page of B's profile (same IndexedDB) with the identity and the chain open. */
  const reopen = async (page) => {
    const did = await page.evaluate(() => window.me.did);
    await page.close();
    const again = await endraPage(profiles[1].context, { url: server.url, relays: [relay.ws], store: 'records-test' });
    await again.evaluate(async (identity) => {
      window.me = await window.endra.openIdentity(identity, { passphrase: 'pass B' });
    }, did);
    await openNotes(again);
    return again;
  };

  // A writes, B online: a note edited once, a note erased.
  const notes = await a.evaluate(async () => {
    const note = await window.notes.post('first draft');
    await note.edit('second draft');
    const regret = await window.notes.post('to be erased');
    const regretRoot = regret.root;
    await regret.delete({ erase: true });
    const erasedHere = await regret.content().then(() => null, (error) => error.code);
    const roots = (await window.notes.record(note.id)).history.map((h) => h.root);
    // A chain's limit: over it, refused before anything is read or written.
    window.notes.maxContentBytes = 1_000;
    const overLimit = await window.notes.post(new Blob([new Uint8Array(200_000)])).then(() => null, (error) => error.code);
    const badLimit = (() => { try { window.notes.maxContentBytes = -1; return null; } catch (error) { return error.code; } })();
    window.notes.maxContentBytes = 100 * 1024 * 1024;
    const count = (await window.notes.records()).length;
    return { note: note.id, regret: regret.id, regretRoot, erasedHere, roots, overLimit, badLimit, count };
  });
  assert.equal(notes.overLimit, 'CONTENT_TOO_LARGE');
  assert.equal(notes.badLimit, 'INVALID_ARGUMENT');
  assert.equal(notes.count, 2, 'nothing was posted over the limit');
  assert.equal(notes.erasedHere, 'CONTENT_UNAVAILABLE', 'the writer erased its own copy');
  assert.equal(notes.roots.length, 2);
  const records = await recordsReach(b, 2);
  const byId = Object.fromEntries(records.map((r) => [r.id, r]));
  assert.deepEqual(byId[notes.note].history, ['created', 'edited']);
  // Each note's text came inline, in its block's own message: there, with no transfer (B
  // saw no progress for it).
  assert.equal(byId[notes.note].status, 'available', "the note's text came with its block");
  const transfers = await b.evaluate((roots) => window.progress.filter((p) => roots.includes(p.root) && p.status === 'fetching').length, notes.roots);
  assert.equal(transfers, 0, 'no transfer for a text');
  assert.deepEqual(byId[notes.regret].history, ['created', 'deleted']);
  assert.equal(byId[notes.regret].erased, true);
  assert.equal(byId[notes.regret].current, null);
  // The relay kept the note's two versions; the erased note's content, which came to it
  // inline, it dropped when A showed the content's erase secret (it cannot read the delete).
  for (const root of notes.roots) await relay.waitFor(contentStored(root), 60_000);
  await relay.waitFor({
    test: (line) => line.includes('event=mailbox_content_erased') && line.includes(`root=${notes.regretRoot}`),
    toString: () => `mailbox_content_erased root=${notes.regretRoot}`,
  }, 60_000);

  // B was told of every version once, each after the versions it saw, and of each content
  // that came (inline) once, after its version.
  const told = await b.evaluate(async ({ note, regret }) => {
    const done = () => {
      const has = (kind, record) => window.told.some((e) => e.kind === kind && e.record === record);
      // The edited version's content (the current one: fetched if its push was missed).
      const current = window.told.some((e) => e.kind === 'content' && e.record === note && e.version !== note);
      return current && has('deleted', regret) ? true : undefined;
    };
    await window.waitFor('B told of both notes', window, 'told', done, { describe: async () => JSON.stringify(window.told) });
    window.stopTelling.abort();
    await window.telling;
    return window.told;
  }, notes);
  const toldAs = told.map((e) => `${e.kind}${e.erase ? '+erase' : ''} ${e.record === notes.note ? 'note' : e.record === notes.regret ? 'regret' : e.record}${e.version === e.record ? '' : ' v'}`);
  assert.deepEqual(told.map((e) => e.seq), told.map((_, i) => i), `numbered from 0 without gaps: ${toldAs}`);
  assert.equal(new Set(told.map((e) => `${e.kind} ${e.version}`)).size, told.length, `nothing told twice: ${toldAs}`);
  const toldVersions = toldAs.filter((e) => !e.startsWith('content'));
  assert.deepEqual(toldVersions.filter((e) => e.endsWith('note') || e.endsWith('note v')), ['created note', 'edited note v'], `${toldAs}`);
  assert.deepEqual(toldVersions.filter((e) => e.includes('regret')), ['created regret', 'deleted+erase regret v'], `${toldAs}`);
  for (const version of new Set(told.filter((e) => e.kind === 'content').map((e) => e.version))) {
    const at = (kind) => told.findIndex((e) => e.version === version && e.kind === kind);
    assert.ok(at('content') > Math.max(at('created'), at('edited')), `a content after its version: ${toldAs}`);
  }
  const lastTold = told[told.length - 1].seq;

  // B's page closes; A posts a 20 MiB file, the relay fetches it, A's browser closes: from
  // here on, the relay is B's only source.
  const bClosed = await b.evaluate(() => window.me.did);
  await b.close();
  const file = await a.evaluate(async () => {
    const bytes = new Uint8Array(20 * 1024 * 1024);
    for (let i = 0; i < bytes.length; i += 65_536) crypto.getRandomValues(bytes.subarray(i, i + 65_536));
    const hash = Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', bytes)), (x) => x.toString(16).padStart(2, '0')).join('');
    // The file goes to wasm a segment at a time, never read whole: a Blob that counts how it
    // is read.
    const reads = { whole: 0, slices: [] };
    class CountingBlob extends Blob {
      slice(start, end, type) {
        reads.slices.push(end - start);
        return super.slice(start, end, type);
      }
      arrayBuffer() {
        reads.whole += 1;
        return super.arrayBuffer();
      }
    }
    // A page can tell its user when the file is safe with the relay ("sent").
    window.kept = [];
    window.notes.addEventListener('kept', (event) => window.kept.push(event.detail));
    const posted = await window.notes.post(new CountingBlob([bytes], { type: 'application/octet-stream' }));
    // "Sending" until a relay keeps it (the relay takes a second or more to fetch 20 MiB).
    const listed = (await window.notes.records()).find((r) => r.id === posted.id);
    const sending = { listed: listed.waitingForRelay, keptBefore: window.kept.some((k) => k.root === posted.root) };
    return { id: posted.id, root: posted.root, hash, size: posted.size, type: posted.type, reads, sending };
  });
  assert.equal(file.size, 20 * 1024 * 1024);
  assert.equal(file.type, 'application/octet-stream');
  assert.equal(file.reads.whole, 0, 'the file is never read whole');
  assert.equal(file.reads.slices.length, 2 * 320, 'each 64 KiB segment read twice: for the root, then to store it');
  assert.ok(file.reads.slices.every((n) => n === 65_536));
  // A is told when the relay holds the whole file, and may close then: B gets it from the
  // relay alone below.
  const kept = await a.evaluate((root) => window.waitFor('the relay keeps the file', window.notes, 'kept', () => window.kept.find((k) => k.root === root), {
    timeout: 120_000,
    describe: async () => `kept: ${JSON.stringify(window.kept)}, ${await window.pageState()}`,
  }), file.root);
  assert.equal(kept.relay, relay.peerId, 'told by the relay');
  assert.equal(kept.chain, chain);
  assert.ok(file.sending.listed || file.sending.keptBefore, 'listed as waiting for a relay until one kept it');
  const sent = await a.evaluate((id) => window.notes.record(id).then((r) => r.waitingForRelay), file.id);
  assert.equal(sent, false, 'no longer waiting once a relay keeps it');
  await relay.waitFor(contentStored(file.root), 1_000);
  await profiles[0].close();
  const written = { ...notes, file: file.id, hash: file.hash };

  // B opens the chain with a quota of stored content too small for the file: it is not
  // fetched, and reading it says why.
  const bq = await endraPage(profiles[1].context, { url: server.url, relays: [relay.ws], store: 'records-test', options: { maxStoredContentBytes: 1024 * 1024 } });
  const quota = await bq.evaluate(async ({ identity, id, file }) => {
    window.me = await window.endra.openIdentity(identity, { passphrase: 'pass B' });
    window.notes = await window.me.openChain(id, { signal: AbortSignal.timeout(60_000) });
    const progress = [];
    window.notes.addEventListener('progress', (event) => progress.push(event.detail));
    const record = await window.waitFor('the record of the file', window.notes, 'change', async () => (await window.notes.records()).find((r) => r.id === file));
    const read = await record.content().then(() => null, (error) => error.code);
    // The listing's own fetch of it ends the same way, and the listings after it say so.
    let waiting = false;
    for (const deadline = Date.now() + 10_000; !waiting && Date.now() < deadline;) {
      waiting = (await window.notes.record(file)).waitingForRoom;
      if (!waiting) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const fetched = progress.filter((p) => p.root === record.root).map((p) => p.done ?? 0);
    return { read, status: record.status, waiting, fetched: Math.max(0, ...fetched) };
  }, { identity: bClosed, id: chain, file: file.id });
  assert.deepEqual(quota, { read: 'CONTENT_QUOTA_EXCEEDED', status: 'missing', waiting: true, fetched: 0 });
  await bq.close();

  // B opens the chain again, first with a limit under the file's size, set for the whole
  // context: the file is listed as too large, is not fetched and cannot be read.
  const FILE_TOTAL = 20 * 1024 * 1024 + 320 * 16;
  const b1 = await endraPage(profiles[1].context, { url: server.url, relays: [relay.ws], store: 'records-test', options: { maxContentBytes: 1024 * 1024 } });
  const limits = await b1.evaluate(async () => {
    const bad = await window.lib.Endra.start({ network: false, store: await window.lib.Store.memory(), maxContentBytes: -1 }).then(() => null, (error) => error.code);
    return { bad };
  });
  assert.deepEqual(limits, { bad: 'INVALID_ARGUMENT' });
  const limited = await b1.evaluate(async ({ identity, id, file }) => {
    window.me = await window.endra.openIdentity(identity, { passphrase: 'pass B' });
    window.notes = await window.me.openChain(id, { signal: AbortSignal.timeout(60_000) });
    // The context's limit; `openChain`'s option sets one handle's own.
    const contextLimit = window.notes.maxContentBytes;
    const own = await window.me.openChain(id, { maxContentBytes: 2048 });
    const ownLimit = own.maxContentBytes;
    own.close();
    window.progress = [];
    window.notes.addEventListener('progress', (event) => window.progress.push(event.detail));
    // Its block comes from the relay once the chain syncs.
    const record = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the record of the file never came')), 60_000);
      const look = async () => {
        const found = (await window.notes.records()).find((r) => r.id === file);
        if (!found) return;
        clearTimeout(timer);
        window.notes.removeEventListener('change', look);
        resolve(found);
      };
      window.notes.addEventListener('change', look);
      void look();
    });
    const read = await record.content().then(() => null, (error) => error.code);
    // The chain's own listing after opening, with the same limit, has come and gone.
    await new Promise((resolve) => setTimeout(resolve, 500));
    await window.notes.records();
    return { contextLimit, ownLimit, tooLarge: record.tooLarge, status: record.status, read, progress: window.progress.filter((p) => p.root === record.root).length };
  }, { identity: bClosed, id: chain, file: file.id });
  assert.deepEqual(limited, { contextLimit: 1024 * 1024, ownLimit: 2048, tooLarge: true, status: 'missing', read: 'CONTENT_TOO_LARGE', progress: 0 });

  // Then B raises the limit: the file is fetched by itself — the page lists nothing — and
  // B reloads in the middle of it.
  await b1.evaluate(() => { window.notes.maxContentBytes = 100 * 1024 * 1024; });
  const before = await b1.evaluate(async (total) => {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const done = Math.max(0, ...window.progress.filter((p) => p.total === total).map((p) => p.done ?? 0));
      if (done >= 4 * 1024 * 1024) return done;
      if (Date.now() > deadline) throw new Error(`the file's transfer stuck at ${done} bytes`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }, FILE_TOTAL);
  const b2 = await reopen(b1);

  const got = await b2.evaluate(async ({ note, regret, file }) => {
    const records = await window.notes.records();
    const find = (id) => records.find((r) => r.id === id);
    const text = await find(note).text();
    const first = await find(note).text({ version: note });
    const erased = await find(regret).content().then(() => null, (error) => error.code);
    const started = performance.now();
    const bytes = await find(file).content();
    const ms = performance.now() - started;
    const hash = Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', bytes)), (x) => x.toString(16).padStart(2, '0')).join('');
    // The same file as a stream of segments, never whole in wasm memory.
    const parts = [];
    for await (const part of find(file).stream()) parts.push(part);
    const streamed = new Uint8Array(await new Blob(parts).arrayBuffer());
    const streamedHash = Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', streamed)), (x) => x.toString(16).padStart(2, '0')).join('');
    const largest = Math.max(...parts.map((p) => p.length));
    const firstVersion = [];
    for await (const part of find(note).stream({ version: note })) firstVersion.push(...part);
    const after = (await window.notes.record(file)).status;
    const progress = window.progress.filter((p) => p.status === 'fetching' && p.total === bytes.length + 320 * 16).map((p) => p.done);
    return {
      text, first, erased, hash, progress, ms, after, streamedHash, largest, parts: parts.length,
      firstVersion: new TextDecoder().decode(new Uint8Array(firstVersion)),
    };
  }, written);
  // Resumed from the last event B's first page saw: the file's record and then its content,
  // and nothing told before.
  const resumed = await b2.evaluate(async ({ since, file }) => {
    const events = [];
    const signal = AbortSignal.timeout(60_000);
    for await (const event of window.notes.recordEvents({ since, signal })) {
      events.push({ seq: event.seq, kind: event.kind, record: event.record === file ? 'file' : event.record });
      if (event.kind === 'content' && event.record === file) break;
    }
    return events;
  }, { since: lastTold, file: written.file });
  assert.deepEqual(resumed, [
    { seq: lastTold + 1, kind: 'created', record: 'file' },
    { seq: lastTold + 2, kind: 'content', record: 'file' },
  ]);
  assert.equal(got.text, 'second draft');
  assert.equal(got.first, 'first draft', 'every version stays readable');
  assert.equal(got.erased, 'CONTENT_UNAVAILABLE');
  assert.equal(got.hash, written.hash, 'the file arrived identical');
  assert.equal(got.after, 'available');
  assert.equal(got.streamedHash, written.hash, 'streamed, the same bytes');
  assert.equal(got.parts, 320);
  assert.equal(got.largest, 65_536, 'one segment at a time');
  assert.equal(got.firstVersion, 'first draft');
  // Progress as the segments are kept, a store transaction of at most 8 (512 KiB) at a time.
  assert.ok(got.progress.length >= 2, `progress reported along the way (${got.progress.length} events)`);
  for (let i = 1; i < got.progress.length; i += 1) {
    assert.ok(got.progress[i] > got.progress[i - 1], 'progress only grows');
    assert.ok(got.progress[i] - got.progress[i - 1] <= 8 * (65_536 + 16), 'in steps of at most 8 segments');
  }
  assert.ok(got.progress[0] > before, `the reloaded page resumed at ${got.progress[0]} bytes, past the ${before} verified before the reload`);
  console.log(`# the rest of the 20 MiB (after ${(before / 1048576).toFixed(1)} MiB before the reload) from the relay: ${(got.ms / 1000).toFixed(1)} s`);
});
