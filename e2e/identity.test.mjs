// End to end, identities: two browser profiles pair as two devices of one person through an
// invitation code and a real relay, show the same DID document, read each other's encrypted
// messages and a chain bound to the person, and follow one epoch policy; then one removes the
// other, which can no longer read new messages or write.
// A browser that has only the DID resolves its document through the relay; a passphrase
// opens the keys however its accents were typed.
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

async function setup(count = 2) {
  const dir = await mkdtemp(join(tmpdir(), 'endra-relay-'));
  const relay = await startRelay({ dir });
  cleanup.push(async () => {
    await relay.stop();
    await rm(dir, { recursive: true, force: true });
  });
  const server = await startServer({ port: 0, relays: [] });
  cleanup.push(() => server.close());
  const pages = [];
  for (let i = 0; i < count; i += 1) {
    const profile = await launchProfile();
    cleanup.push(() => profile.close());
    pages.push(await endraPage(profile.context, { url: server.url, relays: [relay.ws], store: 'identity-test' }));
  }
  // The relay too, for the tests that wait on what its mailbox holds.
  pages.relay = relay;
  return pages;
}

/**
 * Waits inside the page, on the bound chain's subscription (no polling), until
 * `window.notes` delivered `count` messages, or 30 s passed; returns the texts `messages()`
 * then shows (`null` for those it cannot read).
 */
const notesReach = (page, count) => page.evaluate(async (n) => {
  let delivered = 0;
  for await (const _message of window.notes.subscribe({ signal: AbortSignal.timeout(30_000) })) {
    if (++delivered >= n) break;
  }
  const messages = await window.notes.messages();
  return messages.map((m) => (m.body ? new TextDecoder().decode(m.body) : null));
}, count);

/** Waits inside the page until the identity shows `devices` current devices. */
const devicesReach = (page, devices) => page.evaluate(async (n) => {
  await window.me.until((s) => s.current !== undefined, { signal: AbortSignal.timeout(30_000) });
  await window.waitFor(`${n} devices`, window.me, 'change', async () => ((await window.me.devices()).length === n ? true : undefined));
  return window.me.document();
}, devices);

test('two browsers pair as devices of one person; a removed device can no longer write', async () => {
  const [a, b] = await setup();
  const { did, code } = await a.evaluate(async () => {
    window.me = await window.endra.createIdentity({ name: 'Ada', passphrase: 'correct horse A' });
    // This device approves requests that present its invitations.
    window.me.addEventListener('request', (event) => {
      window.me.approve(event.detail).catch((error) => { window.approveError = error; });
    });
    await window.me.write(new TextEncoder().encode('written before the phone joined'));
    const invitation = await window.me.inviteDevice({ expiresIn: 120_000 });
    return { did: window.me.did, code: invitation.code };
  });
  assert.match(did, /^did:endra:b/);
  assert.match(code, /^endra-invite:/);

  // One reader for every invitation: the code, its link and a chain's; each join takes only its kind.
  const invitations = await a.evaluate(async (text) => {
    const link = (await window.me.inviteDevice({ expiresIn: 120_000 })).url;
    const chain = await window.endra.createChain();
    const refusal = (promise) => promise.then(() => null, (error) => error.code);
    return {
      code: window.endra.parseInvitation(text),
      link: window.endra.parseInvitation(link).kind,
      chain: window.endra.parseInvitation(chain.invite()),
      chainId: chain.id,
      joinChain: await refusal(window.endra.joinChain(text)),
      garbage: await refusal(window.endra.joinChain('endra:nonsense')),
      positional: await refusal(window.me.until(() => true, AbortSignal.timeout(1_000))),
    };
  }, code);
  assert.equal(invitations.code.kind, 'identity');
  assert.equal(invitations.code.chain, did.replace('did:endra:', ''));
  assert.equal(invitations.code.role, 'admin');
  assert.equal(invitations.link, 'identity');
  assert.equal(invitations.chain.kind, 'chain');
  assert.equal(invitations.chain.chain, invitations.chainId);
  assert.equal(invitations.joinChain, 'INVITATION_INVALID', 'an identity invitation is not a chain invitation');
  assert.equal(invitations.garbage, 'INVITATION_INVALID');
  assert.equal(invitations.positional, 'INVALID_ARGUMENT', 'a signal goes in { signal }');

  const joined = await b.evaluate(async (invitation) => {
    window.me = await window.endra.joinAsDevice(invitation, {
      passphrase: 'correct horse B', signal: AbortSignal.timeout(60_000),
    });
    return window.me.did;
  }, code);
  assert.equal(joined, did, 'the second device joined the same identity');

  const docA = await devicesReach(a, 2);
  const docB = await devicesReach(b, 2);
  assert.deepEqual(docB, docA, 'both devices derive the same DID document');
  assert.equal(docA.id, did);
  assert.equal(docA.controller.length, 2);
  assert.equal(docA.keyAgreement.length, 2);

  // A sets the policy for epoch keys; B follows it. A nonsensical policy is refused.
  await a.evaluate(() => window.me.setPolicy({ rekeyEvery: 3_600_000, keepEpochs: 5 }));
  const policyB = await b.evaluate(async () => {
    await window.me.until((s) => s.policy.keepEpochs !== null, { signal: AbortSignal.timeout(30_000) });
    return (await window.me.summary()).policy;
  });
  assert.deepEqual(policyB, { rekeyEvery: 3_600_000, keepEpochs: 5 });
  const badPolicy = await a.evaluate(() => window.me.setPolicy({ keepEpochs: 0 }).then(() => null, (error) => error.code));
  assert.equal(badPolicy, 'INVALID_ARGUMENT');

  // B reads the history and writes; A reads B's message.
  const historyB = await b.evaluate(async () => (await window.me.messages()).map((m) => new TextDecoder().decode(m.body)));
  assert.deepEqual(historyB, ['written before the phone joined']);
  await b.evaluate(() => window.me.write(new TextEncoder().encode('from the phone')));
  const textsA = await a.evaluate(async () => {
    await window.me.until(() => true);
    return window.waitFor('A reads 2 messages', window.me, 'change', async () => {
      const texts = (await window.me.messages()).map((m) => m.body && new TextDecoder().decode(m.body));
      return texts.length === 2 ? texts : undefined;
    });
  });
  assert.deepEqual(textsA, ['written before the phone joined', 'from the phone']);

  // A founds a chain bound to the person; B opens it by its ID; both write, both read.
  const notes = await a.evaluate(async () => {
    window.notes = await window.me.createChain();
    await window.notes.write(new TextEncoder().encode('note from the laptop'));
    return window.notes.id;
  });
  await b.evaluate(async (id) => {
    window.notes = await window.me.openChain(id, { signal: AbortSignal.timeout(30_000) });
    // Written once the laptop's note is here, so the phone's note descends from it: arrival
    // order and chain order then agree on every device (two concurrent notes are in chain
    // order by ID, which arrival order need not follow).
    for await (const _note of window.notes.subscribe({ signal: AbortSignal.timeout(30_000) })) break;
    await window.notes.write(new TextEncoder().encode('note from the phone'));
  }, notes);
  const bothNotes = ['note from the laptop', 'note from the phone'];
  assert.deepEqual((await notesReach(a, 2)).sort(), bothNotes);
  assert.deepEqual((await notesReach(b, 2)).sort(), bothNotes);

  // A removes B (acknowledging first the notes it holds, B's included, so they stay shown).
  // B learns it, cannot read what A writes next, and cannot write.
  const deviceB = await b.evaluate(async () => (await window.me.summary()).device);
  await a.evaluate(async (device) => {
    await window.me.removeDevice(device);
    await window.me.write(new TextEncoder().encode('after the removal'));
    await window.notes.write(new TextEncoder().encode('note after the removal'));
  }, deviceB);
  const afterRemoval = await b.evaluate(async () => {
    await window.me.until((s) => s.removed, { signal: AbortSignal.timeout(30_000) });
    await window.waitFor('B holds 3 messages', window.me, 'change', async () => ((await window.me.messages()).length >= 3 ? true : undefined));
    const messages = await window.me.messages();
    const refusal = async (write) => {
      try {
        await write(new TextEncoder().encode('locked out'));
        return null;
      } catch (error) {
        return error.code;
      }
    };
    const last = messages.at(-1);
    return {
      last: { body: last.body, error: last.error && { endra: last.error instanceof window.lib.EndraError, code: last.error.code } },
      code: await refusal((body) => window.me.write(body)),
      notesCode: await refusal((body) => window.notes.write(body)),
    };
  });
  assert.equal(afterRemoval.code, 'NOT_A_MEMBER', 'the removed device cannot write');
  assert.equal(afterRemoval.notesCode, 'NOT_A_MEMBER', 'nor write the bound chain');
  assert.deepEqual(afterRemoval.last.error, { endra: true, code: 'NO_KEY' }, 'the removed device cannot read what was written after');
  const notesB = await notesReach(b, 3);
  assert.equal(notesB[2], null, 'nor read the bound chain\'s new messages');
  const notesA = await notesReach(a, 3);
  assert.deepEqual(
    notesA.slice(0, 2).sort(),
    bothNotes,
    'the removed phone\'s note stays shown: the laptop acknowledged it before the removal',
  );
  assert.deepEqual(notesA, [...notesB.slice(0, 2), 'note after the removal']);

  // The bound chain's subscription: every message once, in arrival order, each with its
  // block's `seq`; resuming after the second `seq` yields only the third.
  const streamed = await a.evaluate(async () => {
    const signal = AbortSignal.timeout(30_000);
    const text = (m) => (m.body ? new TextDecoder().decode(m.body) : null);
    const seen = [];
    for await (const message of window.notes.subscribe({ signal })) {
      seen.push(message);
      if (seen.length === 3) break;
    }
    const resumed = [];
    const more = window.notes.subscribe({ since: seen[1].seq, signal });
    for await (const message of more) {
      resumed.push(message);
      break;
    }
    return {
      texts: seen.map(text),
      ids: seen.map((m) => m.id),
      messageIds: (await window.notes.messages()).map((m) => m.id),
      seqs: seen.map((m) => m.seq),
      resumed: resumed.map((m) => m.id),
    };
  });
  assert.deepEqual(streamed.texts, notesA, 'the subscription yields what messages() shows, in the same order here');
  assert.deepEqual(streamed.ids, streamed.messageIds);
  assert.equal(new Set(streamed.ids).size, 3, 'each message once');
  assert.ok(streamed.seqs[0] < streamed.seqs[1] && streamed.seqs[1] < streamed.seqs[2], `seqs ascend: ${streamed.seqs}`);
  assert.deepEqual(streamed.resumed, [streamed.ids[2]], 'since: the messages after that seq only');
  const finalA = await devicesReach(a, 1);
  assert.equal(finalA.controller.length, 1);
  assert.equal(await a.evaluate(() => window.approveError?.message ?? null), null);
});

test('a browser with only the DID resolves its document through the relay', async () => {
  const [a, c] = await setup(2);
  const { did, document, reopened, wrong, written } = await a.evaluate(async () => {
    // The passphrase with "é" as one code point …
    window.me = await window.endra.createIdentity({ name: 'Ada', passphrase: 'caf\u00e9 horse' });
    let wrong = null;
    try {
      await window.me.rotateKeys({ passphrase: 'not it' });
    } catch (error) {
      wrong = error.code;
    }
    await window.me.rotateKeys({ passphrase: 'caf\u00e9 horse' });
    // … opens the keys typed as "e" + combining accent (another keyboard, same passphrase),
    // from the store: the rotated keys were kept there, so the reopened device writes.
    const again = await window.endra.openIdentity(window.me.did, { passphrase: 'cafe\u0301 horse' });
    await again.write(new TextEncoder().encode('after the rotation'));
    const written = (await again.messages()).map((m) => new TextDecoder().decode(m.body));
    return { did: window.me.did, document: await window.me.document(), reopened: again.did, wrong, written };
  });
  assert.equal(reopened, did, 'the passphrase is compared in Unicode NFC');
  assert.equal(wrong, 'WRONG_PASSPHRASE', 'a wrong passphrase rotates nothing');
  assert.ok(written.includes('after the rotation'), `the reopened device writes with its rotated keys: ${written}`);
  const resolved = await c.evaluate(async (wanted) => {
    const endra = window.endra;
    const document = await endra.resolve(wanted, { timeout: 30_000 });
    // Held now: resolving again needs no network.
    const again = await endra.resolve(wanted);
    // A well-formed DID whose chain lives only in this page's memory: no peer serves it.
    const elsewhere = await window.lib.Endra.start({ store: await window.lib.Store.memory(), network: false });
    const nowhere = await elsewhere.createChain();
    let unknown = null;
    try {
      await endra.resolve(`did:endra:${nowhere.id}`, { timeout: 1_500 });
    } catch (error) {
      unknown = error.code;
    }
    return { document, again, unknown };
  }, did);
  assert.deepEqual(resolved.document, document, 'the document its own device derives, rotated key included');
  assert.deepEqual(resolved.again, document);
  assert.equal(resolved.unknown, 'NOT_FOUND', 'a DID no peer serves is reported, not waited on forever');
});

test('a person lost to a stolen browser is taken back with the recovery key on a new one', async () => {
  const pages = await setup(2);
  const [a, b] = pages;
  const { did, recoveryKey, chain, blocks } = await a.evaluate(async () => {
    window.me = await window.endra.createIdentity({ name: 'Ada', passphrase: 'laptop pass' });
    await window.me.write(new TextEncoder().encode('before the theft'));
    const { blocks } = await window.me.summary();
    return { did: window.me.did, recoveryKey: window.me.recoveryKey, chain: window.me.chain, blocks };
  });
  // The relay holds the whole identity chain before the new browser fetches it: one that
  // lagged would hand over an older state (the recovery would still land, and the rest
  // follow, but the first write could find no default chain named yet).
  await pages.relay.waitFor({
    test: (line) => {
      const match = new RegExp(`event=mailbox_stored chain=${chain} blocks=(\\d+)`).exec(line);
      return match !== null && Number(match[1]) >= blocks;
    },
    toString: () => `mailbox_stored chain=${chain} blocks>=${blocks}`,
  });
  assert.match(recoveryKey, /^endra-recovery:/);
  // Opened again (a reload), the identity never shows the code: it is not stored.
  assert.equal(await a.evaluate(async (id) => (await window.endra.openIdentity(id, { passphrase: 'laptop pass' })).recoveryKey ?? null, did), null);

  // The owner, on a new browser, with only the DID and the code written down.
  const recovered = await b.evaluate(async ([id, code]) => {
    const refusal = (promise) => promise.then(() => null, (error) => error.code);
    // One character changed (the one three from the end, which is never the same after).
    const at = code.length - 3;
    const typo = code.slice(0, at) + (code[at] === '2' ? '3' : '2') + code.slice(at + 1);
    const mistyped = await refusal(window.endra.recoverIdentity(id, { recoveryKey: typo, passphrase: 'new pass' }));
    window.me = await window.endra.recoverIdentity(id, { recoveryKey: code, passphrase: 'new pass', signal: AbortSignal.timeout(60_000) });
    await window.me.write(new TextEncoder().encode('mine again'));
    const devices = await window.me.devices();
    const spent = await refusal(window.endra.recoverIdentity(id, { recoveryKey: code, passphrase: 'new pass' }));
    return { mistyped, next: window.me.recoveryKey, devices: devices.map((d) => d.current), spent };
  }, [did, recoveryKey]);
  assert.equal(recovered.mistyped, 'RECOVERY_KEY_INVALID', 'a mistyped code is caught before anything is written');
  assert.match(recovered.next, /^endra-recovery:/);
  assert.notEqual(recovered.next, recoveryKey, 'a new code replaces the spent one');
  assert.deepEqual(recovered.devices, [true], 'the new browser is the person\'s only device');
  assert.equal(recovered.spent, 'REVOKED', 'the spent code takes nothing back');

  // The old browser learns it was removed and can no longer write.
  const old = await a.evaluate(async () => {
    await window.me.until((s) => s.removed, { signal: AbortSignal.timeout(30_000) });
    try {
      await window.me.write(new TextEncoder().encode('the thief writes'));
      return null;
    } catch (error) {
      return error.code;
    }
  });
  assert.equal(old, 'NOT_A_MEMBER');
  // A reload of the new browser opens the recovered identity with the kept keys.
  const reopened = await b.evaluate(async (id) => {
    const again = await window.endra.openIdentity(id, { passphrase: 'new pass' });
    return (await again.summary()).current;
  }, did);
  assert.equal(reopened, true);
});

test('a device a person removes loses the person\'s groups', async () => {
  const [a, b, c] = await setup(3);
  // Ada: laptop (a) and phone (b). Bob (c) founds a group; Ada joins it with both devices.
  const { ada, code } = await a.evaluate(async () => {
    window.me = await window.endra.createIdentity({ name: 'Ada', passphrase: 'laptop' });
    window.me.addEventListener('request', (e) => window.me.approve(e.detail));
    return { ada: window.me.did, code: (await window.me.inviteDevice({ expiresIn: 120_000 })).code };
  });
  const phoneDid = await b.evaluate(async (invitation) => {
    window.me = await window.endra.joinAsDevice(invitation, { passphrase: 'phone', signal: AbortSignal.timeout(60_000) });
    return (await window.me.summary()).device;
  }, code);
  await devicesReach(a, 2);
  const { group, groupCode } = await c.evaluate(async () => {
    window.me = await window.endra.createIdentity({ name: 'Bob', passphrase: 'bob' });
    window.group = window.keepErrors(await window.endra.createGroup({ name: 'Team', passphrase: 'bob', person: window.me }));
    window.group.addEventListener('request', (e) => window.group.approve(e.detail));
    return { group: window.group.did, groupCode: (await window.group.invite({ role: 'member' })).code };
  });
  await a.evaluate(async (invitation) => {
    window.group = window.keepErrors(await window.endra.joinGroup(invitation, { passphrase: 'laptop', person: window.me, signal: AbortSignal.timeout(60_000) }));
  }, groupCode);
  // The phone, listed among Ada's devices, opens the group and writes in it.
  await b.evaluate(async (did) => {
    await window.endra.resolve(did, { timeout: 30_000 });
    window.group = window.keepErrors(await window.endra.openGroup(did, { passphrase: 'phone' }));
    await window.group.until((s) => s.current, { signal: AbortSignal.timeout(30_000) });
    await window.group.write(new TextEncoder().encode('the phone, in the group'));
  }, group);

  // The laptop and Bob hold the phone's message before Ada removes the phone: whichever of
  // them writes the group's update first acknowledges what it holds, and a message nobody
  // acknowledged when its author was removed is concurrent with the removal and shown by no
  // one (see BoundChain.messages), so the test would race the gossip otherwise.
  for (const [page, who] of [[a, 'the laptop'], [c, 'Bob']]) {
    await page.evaluate((label) => window.waitFor(label, window.group, 'change', async () => {
      const texts = (await window.group.messages()).map((m) => m.body && new TextDecoder().decode(m.body));
      return texts.includes('the phone, in the group') ? true : undefined;
    }, { describe: async () => `${await window.pageState()}, ${(await window.group.messages()).length} messages shown` }), `${who} holds the phone's message`)
      .catch(async (error) => {
        // Stuck: what the other pages hold too (a rare CI failure here is not understood yet).
        const states = await Promise.all([a, b, c].map((p) => p.evaluate(() => window.pageState()).catch((e) => e.message)));
        throw new Error(`${error.message}; laptop: ${states[0]}; phone: ${states[1]}; Bob: ${states[2]}`);
      });
  }
  // Ada removes the phone from her person: the group follows, with a new epoch.
  await a.evaluate((device) => window.me.removeDevice(device), phoneDid);
  const phoneOut = await b.evaluate(async () => {
    await window.group.until((s) => !s.current, { signal: AbortSignal.timeout(60_000) });
    return (await window.group.summary()).current;
  });
  assert.equal(phoneOut, false, 'the phone is no longer a device of the group');
  const adaDevices = await c.evaluate((did) => window.waitFor('Bob sees Ada with one device', window.group, 'change', async () => {
    const ada = (await window.group.members()).find((m) => m.did === did);
    return ada && ada.devices.length === 1 ? ada.devices : undefined;
  }, { describe: window.pageState }), ada);
  assert.equal(adaDevices.length, 1);
  await c.evaluate(() => window.group.write(new TextEncoder().encode('after the phone left')));
  const seen = await b.evaluate(async () => {
    const messages = await window.waitFor('the phone holds 2 group messages', window.group, 'change', async () => {
      const held = await window.group.messages();
      return held.length >= 2 ? held : undefined;
    }, { describe: async () => `${await window.pageState()}, ${(await window.group.messages()).length} messages shown` });
    const last = messages.at(-1);
    const refusal = await window.group.write(new TextEncoder().encode('still here?')).then(() => null, (e) => e.code);
    return { body: last.body ? new TextDecoder().decode(last.body) : null, code: last.error?.code, refusal };
  });
  assert.equal(seen.body, null, 'the removed phone cannot read what the group writes next');
  assert.equal(seen.code, 'NO_KEY');
  assert.equal(seen.refusal, 'NOT_A_MEMBER');
  const laptopReads = await a.evaluate(() => window.waitFor('the laptop reads the group', window.group, 'change', async () => {
    const texts = (await window.group.messages()).map((m) => m.body && new TextDecoder().decode(m.body));
    return texts.includes('after the phone left') ? texts : undefined;
  }, { describe: window.pageState }));
  assert.ok(laptopReads.includes('the phone, in the group'));
});
