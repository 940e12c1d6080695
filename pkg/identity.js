// @ts-check
// Identities: persons (controlled by their devices) and groups (controlled by their admins),
// each a DID backed by its own chain. Both share the module-private base `Controlled`.
import { WasmIdentity } from './wasm/endra.js';
import { bytes, call, EndraError, INTERNAL, internalOnly, options, readable, throwIfAborted, wrap } from './errors.js';
import { makeBoundChain } from './bound-chain.js';
import { expectInvitation, identityLink } from './invitation.js';
import { fetchChain, nextChange, rawNode, unwatch, watch } from './node.js';
import { rawStore } from './store.js';

/** @typedef {import('./store.js').Store} Store */
/** @typedef {import('./node.js').Node} Node */
/** @typedef {import('./bound-chain.js').BoundChain} BoundChain */
/** @typedef {import('./bound-chain.js').Message} Message */
/**
 * @typedef {{ did: string, device: string, kind: 'person' | 'group', name: string, current: boolean,
 *   removed: boolean, pending: { request: string, member: string, devices: string[] }[],
 *   changes: number, blocks: number, policy: { rekeyEvery: number | null, keepEpochs: number | null } }} Summary
 */
/** @typedef {{ code: string, url: string, expires: number }} IdentityInvitation */

/** The raw handle of an identity (package-internal). @type {(identity: Controlled) => WasmIdentity} */
let rawOf;
/** @type {(identity: Controlled, role: 'admin' | 'member', expiresIn: number) => Promise<IdentityInvitation>} */
let inviteAs;
/** @type {(identity: Controlled) => Promise<Controlled>} */
let started;
/** @type {(identity: Controlled) => Node} */
let nodeOf;
/** What a group does after each update of its summary (package-internal, set by `Group`). @type {(identity: Controlled) => Promise<void>} */
let afterUpdate = async () => {};

/**
 * What identities and groups have in common: a DID backed by a chain, its summary and
 * events, messages sealed under its epoch key, bound chains and the epoch policy. Not
 * exported: `Identity` and `Group` are the public classes.
 *
 * Events: `change` (membership, keys or messages changed), `request` (detail
 * `{ request, member, devices }`: someone presented an invitation; call `approve`),
 * `removed` (this device was removed: it can no longer read new messages or write), `error`.
 */
class Controlled extends EventTarget {
  /** @type {WasmIdentity} */
  #raw;
  /** @type {Store} */
  #store;
  /** @type {Node} */
  #node;
  /** @type {{ version: string, requests: Set<string>, removed: boolean }} */
  #seen = { version: '', requests: new Set(), removed: false };
  #wake = () => this.#update();
  /** New messages on the default chain: a change even though the identity chain is the same. */
  #wakeMessages = () => this.#update({ messages: true });
  /** @type {Promise<void>} */
  #updating = Promise.resolve();

  /**
   * @param {symbol} token
   * @param {WasmIdentity} raw
   * @param {Store} store
   * @param {Node} node
   */
  constructor(token, raw, store, node) {
    internalOnly(token, 'identities come from an Endra context: endra.createIdentity(…), endra.openIdentity(did, …), …');
    super();
    this.#raw = raw;
    this.#store = store;
    this.#node = node;
    // Membership changes arrive on the identity chain, messages on its default chain.
    watch(node, raw.chain, this.#wake);
    if (raw.defaultChain) watch(node, raw.defaultChain, this.#wakeMessages);
  }

  /** Emits the first events. */
  async #started() {
    await this.#update();
    return this;
  }

  /**
   * Resolves when `test(summary)` holds, re-checking at every change of the chain; `signal`
   * gives up (rejecting with `ABORTED`).
   * @param {(summary: Summary) => boolean} test
   * @param {{ signal?: AbortSignal }} [opts]
   */
  async until(test, opts) {
    const { signal } = options(opts, 'until(test, options)');
    for (;;) {
      const next = nextChange(this.#node, this.#raw.chain, signal);
      if (test(await this.summary())) return;
      throwIfAborted(signal);
      await next;
    }
  }

  /** @param {{ messages?: boolean }} [why] */
  #update({ messages = false } = {}) {
    this.#updating = this.#updating.then(async () => {
      await call(() => this.#raw.refresh());
      const s = await this.summary();
      for (const p of s.pending) {
        if (!this.#seen.requests.has(p.request)) {
          this.#seen.requests.add(p.request);
          this.dispatchEvent(new CustomEvent('request', { detail: p }));
        }
      }
      // Membership, keys or messages: any new block.
      const version = `${s.changes}/${s.blocks}`;
      if (messages || version !== this.#seen.version) {
        this.#seen.version = version;
        this.dispatchEvent(new CustomEvent('change', { detail: s }));
      }
      if (s.removed && !this.#seen.removed) {
        this.#seen.removed = true;
        this.dispatchEvent(new CustomEvent('removed', { detail: s }));
      }
      await afterUpdate(this);
    }).catch((error) => {
      this.dispatchEvent(new CustomEvent('error', { detail: wrap(error) }));
    });
    return this.#updating;
  }

  /** `did:endra:<chain-id>`. */
  get did() {
    return this.#raw.did;
  }

  /** The identity chain's ID. */
  get chain() {
    return this.#raw.chain;
  }

  /**
   * `{ did, device, kind, name, current, removed, pending, changes, blocks, policy }`.
   * @returns {Promise<Summary>}
   */
  summary() {
    return call(() => this.#raw.summary());
  }

  /**
   * The W3C DID document (a plain object), derived from the chain.
   * @returns {Promise<Record<string, unknown>>}
   */
  async document() {
    return JSON.parse(await call(() => this.#raw.document()));
  }

  /**
   * A one-time invitation for `role`, valid `expiresIn` ms.
   * @param {'admin' | 'member'} role
   * @param {number} expiresIn
   * @returns {Promise<IdentityInvitation>}
   */
  async #invite(role, expiresIn) {
    const { code, expires } = await call(() => this.#raw.invite(role, Number(expiresIn)));
    return { code, url: identityLink(code), expires };
  }

  /**
   * Lets in the device or member of a pending request (see the `request` event).
   * @param {string | { request: string }} request
   */
  async approve(request) {
    const id = typeof request === 'object' && request !== null ? request.request : request;
    await call(() => this.#raw.approve(String(id)));
  }

  /**
   * Sets the policy for epoch keys (admins only), followed by every device:
   * `rekeyEvery` ms — a new epoch before a write once the current one is older (the
   * schedule; removals and rotations always make one); `keepEpochs` — only the newest that
   * many epochs stay readable: older ones are never shared with new devices, not sealed again
   * when a device rotates its keys, and reading them fails with `EPOCH_DISCARDED`. Omit
   * either for no schedule or to keep all history. `summary().policy` shows it.
   * @param {{ rekeyEvery?: number | null, keepEpochs?: number | null }} [policy]
   */
  async setPolicy({ rekeyEvery, keepEpochs } = {}) {
    /** @param {number | null | undefined} value */
    const optional = (value) => (value === undefined || value === null ? undefined : Number(value));
    await call(() => this.#raw.setPolicy(optional(rekeyEvery), optional(keepEpochs)));
  }

  /**
   * Writes an encrypted message (bytes) readable by the current devices or members, to the
   * identity's default chain (a chain bound to it, named when it was created: identity
   * chains carry membership ops only).
   * @param {Uint8Array} body
   * @param {{ topics?: string[] }} [options]
   * @returns {Promise<string>}
   */
  write(body, { topics = [] } = {}) {
    return call(() => this.#raw.write(bytes(body, 'body'), topics));
  }

  /**
   * Accepted messages in order: `[{ id, device, time, body }]`; `error` (an `EndraError`)
   * instead of `body` if this device cannot read one.
   * @returns {Promise<Message[]>}
   */
  messages() {
    return call(async () => readable(await this.#raw.messages()));
  }

  /**
   * Founds a chain bound to this identity — a group's chat, a person's notes — that only its
   * current devices can write (every peer, the relay included, refuses anyone else's blocks)
   * and read (messages are sealed under the identity's epoch key). Share `chain.id` with the
   * other devices or members; they call `openChain(id)`.
   * @returns {Promise<BoundChain>}
   */
  async createChain() {
    return makeBoundChain(await call(() => this.#raw.createChain()), this.#store, this.#node);
  }

  /**
   * Opens a chain bound to this identity by its ID, fetching it from its peers if the store
   * does not hold it (resolves once caught up; `signal` aborts). Rejects with `NOT_BOUND` if
   * the chain is bound to another identity, `UNAUTHORISED` if whoever founded it was not a
   * device of this identity. `maxContentBytes`: the chain's limit from the start (see
   * `BoundChain.maxContentBytes`), before it fetches anything.
   * @param {string} id
   * @param {{ signal?: AbortSignal, maxContentBytes?: number }} [opts]
   * @returns {Promise<BoundChain>}
   */
  async openChain(id, opts) {
    const { signal, maxContentBytes } = options(opts, 'openChain(id, options)');
    const chain = String(id);
    if (!(await this.#store.chains()).includes(chain)) {
      await fetchChain(this.#store, this.#node, chain, [], signal);
      await this.#node.synced(chain, { signal });
    }
    return makeBoundChain(await call(() => this.#raw.openChain(chain)), this.#store, this.#node, maxContentBytes);
  }

  /** Stops events of this handle. */
  close() {
    unwatch(this.#node, this.#raw.chain, this.#wake);
    if (this.#raw.defaultChain) unwatch(this.#node, this.#raw.defaultChain, this.#wakeMessages);
  }

  static {
    rawOf = (identity) => identity.#raw;
    inviteAs = (identity, role, expiresIn) => identity.#invite(role, expiresIn);
    started = (identity) => identity.#started();
    nodeOf = (identity) => identity.#node;
  }
}

/**
 * A person: a DID (`did:endra:<chain-id>`) controlled by its devices. This device's keys
 * are kept in the store encrypted under the passphrase (Argon2id). Events as `Controlled`:
 * `change`, `request`, `removed`, `error`.
 */
export class Identity extends Controlled {
  /**
   * The person's recovery key — `endra-recovery:…`, to show the user once and have them
   * keep it offline (paper, a password manager) — on the object `createIdentity` or
   * `recoverIdentity` returned; `undefined` on one opened or joined. It is never stored: a
   * reload cannot show it again. With it, `endra.recoverIdentity(did, …)` takes the person
   * back on a new device and removes every other device, whatever they do meanwhile.
   * @returns {string | undefined}
   */
  get recoveryKey() {
    return rawOf(this).recoveryKey;
  }

  /**
   * Current devices: `[{ did, member, current }]` (`current` marks this device).
   * @returns {Promise<{ did: string, member: string, current: boolean }[]>}
   */
  devices() {
    return call(() => rawOf(this).devices());
  }

  /**
   * A one-time invitation for a new device, valid `expiresIn` ms (default 10 minutes):
   * `{ code, url, expires }`. The code is the whole invitation (identity, relays, signer).
   * @param {{ expiresIn?: number }} [options]
   */
  inviteDevice({ expiresIn = 600_000 } = {}) {
    return inviteAs(this, 'admin', expiresIn);
  }

  /**
   * Removes a device (by its `did:key`): it can neither read what follows nor write.
   * @param {string} did
   */
  async removeDevice(did) {
    await call(() => rawOf(this).remove(String(did)));
  }

  /**
   * Replaces this device's keys; history stays readable (what the policy keeps of it). The
   * new keys are sealed in the store under `passphrase` (the one the keys were kept with)
   * before the rotation is written, so a reload, even one in the middle, opens with them.
   * @param {{ passphrase: string }} opts
   */
  async rotateKeys(opts) {
    const { passphrase } = options(opts, 'rotateKeys(options)');
    const kept = secret(passphrase);
    await call(() => rawOf(this).rotate(kept));
  }
}

/**
 * A group DID controlled by its admins (persons), read and written by its members. Events
 * as for `Identity`.
 *
 * A group follows its members' own identities: this handle keeps every member's person
 * chain synced, and when one changes (a person removed a device, added one) it brings the
 * member's devices in the group up to date — every replica checks them against that chain —
 * with a new epoch when a device left. So a device a person removes loses all of the
 * person's groups as soon as any member's device has seen the removal.
 */
export class Group extends Controlled {
  /** Member person chains this handle follows. @type {Set<string>} */
  #following = new Set();
  #followNow = () => {
    call(() => rawOf(this).followMembers()).catch((error) => {
      this.dispatchEvent(new CustomEvent('error', { detail: wrap(error) }));
    });
  };

  /** Syncs the members' person chains not followed yet, then follows them all once. */
  async #follow() {
    const node = nodeOf(this);
    for (const member of await this.members()) {
      const chain = WasmIdentity.chainOfDid(member.did);
      if (this.#following.has(chain)) continue;
      this.#following.add(chain);
      watch(node, chain, this.#followNow);
      await call(() => rawNode(node).open(chain));
    }
    await call(() => rawOf(this).followMembers());
  }

  /** Stops events of this handle and following its members. */
  close() {
    super.close();
    for (const chain of this.#following) unwatch(nodeOf(this), chain, this.#followNow);
    this.#following.clear();
  }

  static {
    afterUpdate = async (identity) => {
      if (identity instanceof Group) await identity.#follow();
    };
  }

  /**
   * A one-time invitation for a person (`role`: 'member' or 'admin').
   * @param {{ role?: 'admin' | 'member', expiresIn?: number }} [options]
   */
  invite({ role = 'member', expiresIn = 600_000 } = {}) {
    return inviteAs(this, role, expiresIn);
  }

  /**
   * Current members `[{ did, role, devices }]`.
   * @returns {Promise<{ did: string, role: 'admin' | 'member', devices: string[] }[]>}
   */
  members() {
    return call(() => rawOf(this).members());
  }

  /**
   * Removes a member (by person DID) and rekeys.
   * @param {string} did
   */
  async remove(did) {
    await call(() => rawOf(this).remove(String(did)));
  }

  /** Leaves the group. */
  async leave() {
    await call(() => rawOf(this).leave());
  }
}

/**
 * @param {unknown} passphrase
 * @returns {string}
 */
function secret(passphrase) {
  if (typeof passphrase !== 'string' || passphrase === '') {
    throw new EndraError('options.passphrase must be a non-empty string (it encrypts the device keys)', 'INVALID_ARGUMENT');
  }
  // One passphrase, one key: "é" typed as one code point or as e + accent opens the same keys.
  return passphrase.normalize('NFC');
}

/** @param {unknown} person */
function personOf(person) {
  if (!(person instanceof Identity)) throw new EndraError('options.person must be an Identity', 'INVALID_ARGUMENT');
  return rawOf(person);
}

/**
 * @template {typeof Identity | typeof Group} C
 * @param {C} Class
 * @param {WasmIdentity} raw
 * @param {Store} store
 * @param {Node} node
 * @returns {Promise<InstanceType<C>>}
 */
async function attach(Class, raw, store, node) {
  const identity = /** @type {InstanceType<C>} */ (new Class(INTERNAL, raw, store, node));
  await started(identity);
  return identity;
}

/**
 * Fetches the identity chain named in an invitation code through its relays and opens it.
 * @template {typeof Identity | typeof Group} C
 * @param {C} Class
 * @param {Store} store
 * @param {Node} node
 * @param {string} code
 * @param {string} passphrase
 * @param {AbortSignal} [signal]
 */
async function openInvited(Class, store, node, code, passphrase, signal) {
  const { chain, relays } = expectInvitation(code, 'identity');
  await fetchChain(store, node, chain, relays, signal);
  // Caught up before asking to join: every replica admits a request only if its inviter is a
  // device in the request's own history, which is what this device holds when it writes it.
  await node.synced(chain, { signal });
  const raw = await call(() => WasmIdentity.open(rawStore(store), rawNode(node), chain, passphrase));
  await withMessages(raw, store, node, signal);
  return attach(Class, raw, store, node);
}

/**
 * Fetches the identity's default chain (its messages) if the store does not hold it yet — a
 * device that just joined, or opened an identity it resolved — and waits until it caught up.
 * @param {WasmIdentity} raw
 * @param {Store} store
 * @param {Node} node
 * @param {AbortSignal} [signal]
 */
async function withMessages(raw, store, node, signal) {
  const messages = raw.defaultChain;
  if (messages && !(await store.chains()).includes(messages)) {
    await fetchChain(store, node, messages, [], signal);
    await node.synced(messages, { signal });
  }
}

/**
 * The identity operations of a context, over its store and node (package-internal: the
 * `Endra` methods call these).
 * @param {Store} store
 * @param {Node} node
 */
export function identitiesOf(store, node) {
  return {
    /** @param {{ name?: string, passphrase?: string, relays?: string[] }} options */
    async create({ name = '', passphrase, relays }) {
      const key = secret(passphrase);
      const raw = await call(() => WasmIdentity.create(rawStore(store), rawNode(node), String(name), key, relays ?? node.relays));
      return attach(Identity, raw, store, node);
    },

    /**
     * @param {string} did
     * @param {{ passphrase?: string, signal?: AbortSignal }} options
     */
    async open(did, { passphrase, signal }) {
      const key = secret(passphrase);
      const chain = String(did).replace(/^did:endra:/, '');
      const raw = await call(() => WasmIdentity.open(rawStore(store), rawNode(node), chain, key));
      await withMessages(raw, store, node, signal);
      return attach(Identity, raw, store, node);
    },

    /**
     * @param {string} did
     * @param {{ passphrase?: string, signal?: AbortSignal }} options
     */
    async openGroup(did, { passphrase, signal }) {
      const key = secret(passphrase);
      const chain = String(did).replace(/^did:endra:/, '');
      const raw = await call(() => WasmIdentity.open(rawStore(store), rawNode(node), chain, key));
      await withMessages(raw, store, node, signal);
      return attach(Group, raw, store, node);
    },

    /**
     * @param {string} code
     * @param {{ passphrase?: string, signal?: AbortSignal }} options
     */
    async joinAsDevice(code, { passphrase, signal }) {
      const key = secret(passphrase);
      const identity = await openInvited(Identity, store, node, code, key, signal);
      const { code: text } = expectInvitation(code, 'identity');
      await call(() => rawOf(identity).requestJoin(text));
      await identity.until((s) => s.current, { signal });
      return identity;
    },

    /**
     * @param {string} did
     * @param {{ recoveryKey?: string, passphrase?: string, signal?: AbortSignal, timeout?: number }} options
     */
    async recover(did, { recoveryKey, passphrase, signal, timeout = 30_000 }) {
      const key = secret(passphrase);
      if (typeof recoveryKey !== 'string' || recoveryKey === '') {
        throw new EndraError('options.recoveryKey must be the endra-recovery: code', 'INVALID_ARGUMENT');
      }
      // The chain and everything on it, from whatever peer has it, before the recovery is
      // written on top of it.
      await this.resolve(did, { signal, timeout });
      const chain = await call(async () => WasmIdentity.chainOfDid(String(did)));
      await node.synced(chain, { signal });
      const raw = await call(() => WasmIdentity.recover(rawStore(store), rawNode(node), chain, key, recoveryKey));
      await withMessages(raw, store, node, signal);
      return attach(Identity, raw, store, node);
    },

    /** @param {{ name?: string, passphrase?: string, relays?: string[], person?: Identity }} options */
    async createGroup({ name = '', passphrase, relays, person }) {
      const key = secret(passphrase);
      const founder = personOf(person);
      const raw = await call(() => WasmIdentity.createGroup(rawStore(store), rawNode(node), String(name), key, relays ?? node.relays, founder));
      return attach(Group, raw, store, node);
    },

    /**
     * @param {string} code
     * @param {{ passphrase?: string, person?: Identity, signal?: AbortSignal }} options
     */
    async joinGroup(code, { passphrase, person, signal }) {
      const key = secret(passphrase);
      const member = personOf(person);
      const group = await openInvited(Group, store, node, code, key, signal);
      const { code: text } = expectInvitation(code, 'identity');
      await call(() => rawOf(group).requestJoinAs(text, member));
      await group.until((s) => s.current, { signal });
      return group;
    },

    /**
     * @param {string} did
     * @param {{ signal?: AbortSignal, timeout?: number }} options
     * @returns {Promise<Record<string, unknown>>}
     */
    async resolve(did, { signal, timeout = 30_000 }) {
      const chain = await call(async () => WasmIdentity.chainOfDid(String(did)));
      if (!(await store.chains()).includes(chain)) {
        const expired = AbortSignal.timeout(timeout);
        const until = signal ? AbortSignal.any([signal, expired]) : expired;
        try {
          // The node already uses its relays: it asks them (and their rendezvous) for the chain.
          await fetchChain(store, node, chain, [], until);
          await node.synced(chain, { signal: until });
        } catch (error) {
          if (expired.aborted && !signal?.aborted) {
            throw new EndraError(`no peer served ${did} within ${timeout} ms`, 'NOT_FOUND', { cause: error });
          }
          throw error;
        }
      } else {
        await call(() => rawNode(node).open(chain));
      }
      return JSON.parse(await call(() => WasmIdentity.resolveDocument(rawStore(store), chain)));
    },
  };
}
