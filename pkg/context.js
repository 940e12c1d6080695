// @ts-check
// The context: one object that owns a store and the node syncing it, and hands out chains
// and identities over exactly those two.
import { EndraError, INTERNAL, internalOnly, options } from './errors.js';
import { setContextContentLimit } from './bound-chain.js';
import { chainsOf } from './chain.js';
import { identitiesOf } from './identity.js';
import { expectInvitation, parseInvitation } from './invitation.js';
import { fetchChain, needNode, startNode, stopNode } from './node.js';
import { checkedContentLimit, MAX_CONTENT_BYTES } from './record.js';
import { Store } from './store.js';

/** @typedef {import('./node.js').Node} Node */
/** @typedef {import('./chain.js').Chain} Chain */
/** @typedef {import('./identity.js').Identity} Identity */
/** @typedef {import('./identity.js').Group} Group */

/**
 * The way into Endra: a store and the node that syncs it, and every chain and identity made
 * or opened through them, so that a chain can never be written to one store while a node
 * syncs another.
 *
 * ```js
 * await using endra = await Endra.start({ store: 'my-app', relays });
 * const chain = await endra.createChain();
 * ```
 *
 * Passphrases are given per identity call (`createIdentity`, `openIdentity`, …), not to
 * `start`: plain chains need none, each identity or group may have its own, and the context
 * does not keep the secret around for the life of the page.
 */
export class Endra {
  /** @type {Store} */
  #store;
  /** @type {Node | null} */
  #node;
  /** @type {ReturnType<typeof chainsOf>} */
  #chains;
  /** @type {ReturnType<typeof identitiesOf> | null} */
  #identities;
  /** @type {Promise<void> | undefined} */
  #stopping;

  /**
   * @param {symbol} token
   * @param {Store} store
   * @param {Node | null} node
   */
  constructor(token, store, node) {
    internalOnly(token, 'use await Endra.start({ store, relays })');
    this.#store = store;
    this.#node = node;
    this.#chains = chainsOf(store, node);
    this.#identities = node && identitiesOf(store, node);
  }

  /**
   * Opens the store and starts a node over it that uses `relays` (multiaddrs ending in
   * `/p2p/<id>`; give a relay's WebRTC-Direct and WebSocket addresses together and the first
   * to connect wins). `store`: a `Store` (`Store.indexedDb(name)`, `Store.memory()`) or the
   * name of an IndexedDB store (default `'endra'`). `network: false` starts no node: chains
   * are local only (`node` is `null`; invitations, joins and identities reject with
   * `NOT_CONNECTED`). `maxStoredContentBytes` (4 GiB by default): the most sealed bytes of
   * offchain content the node keeps in the store, counted as whole 64 KiB segments — a
   * content that does not fit beside what is kept and being fetched is not fetched (reading
   * it rejects with `CONTENT_QUOTA_EXCEEDED`; it is fetched once erasures make room), nor
   * kept when it comes with its message; this device's own posts are not refused, but count.
   * `maxContentBytes` (100 MiB, the most, by default): the limit every bound chain handle of
   * the context starts with (see `BoundChain.maxContentBytes`; `identity.openChain(id, {
   * maxContentBytes })` and the handle's setter override it for one handle).
   * @param {{ store?: Store | string, relays?: string[], network?: boolean, maxStoredContentBytes?: number, maxContentBytes?: number }} [opts]
   */
  static async start(opts) {
    const { store = 'endra', relays = [], network = true, maxStoredContentBytes, maxContentBytes } = options(opts, 'Endra.start(options)');
    if (!Array.isArray(relays)) throw new EndraError('options.relays must be an array of multiaddrs', 'INVALID_ARGUMENT');
    if (maxStoredContentBytes !== undefined && (!Number.isSafeInteger(maxStoredContentBytes) || maxStoredContentBytes < 0)) {
      throw new EndraError('options.maxStoredContentBytes must be a whole number of bytes', 'INVALID_ARGUMENT');
    }
    const limit = maxContentBytes === undefined ? MAX_CONTENT_BYTES : checkedContentLimit(maxContentBytes, 'options.maxContentBytes');
    /** @type {Store} */
    let opened;
    if (store instanceof Store) opened = store;
    else if (typeof store === 'string' && store !== '') opened = await Store.indexedDb(store);
    else throw new EndraError('options.store must be a Store or the name of an IndexedDB store', 'INVALID_ARGUMENT');
    const node = network ? await startNode(opened, relays.map(String), maxStoredContentBytes) : null;
    if (node) setContextContentLimit(node, limit);
    return new Endra(INTERNAL, opened, node);
  }

  /** The store everything of this context is kept in. */
  get store() {
    return this.#store;
  }

  /** The node syncing the store (`null` with `network: false`). */
  get node() {
    return this.#node;
  }

  /** @returns {ReturnType<typeof identitiesOf>} */
  #ids() {
    needNode(this.#node);
    return /** @type {ReturnType<typeof identitiesOf>} */ (this.#identities);
  }

  /**
   * Creates a chain whose genesis block this device signs; the node syncs it.
   * @param {{ topics?: string[], body?: Uint8Array }} [opts]
   * @returns {Promise<Chain>}
   */
  async createChain(opts) {
    return this.#chains.create(options(opts, 'createChain'));
  }

  /**
   * Opens a chain the store holds (`NOT_FOUND` otherwise); the node syncs it.
   * @param {string} id
   * @returns {Promise<Chain>}
   */
  async openChain(id) {
    return this.#chains.open(id);
  }

  /**
   * Joins a chain another device invited this one to (`chain.invite()`): dials the relays in
   * the invitation, fetches the chain from its peers and resolves once its genesis block is
   * stored here (blocks keep arriving after). `signal` gives up with `ABORTED`.
   * @param {string} invitation
   * @param {{ signal?: AbortSignal }} [opts]
   * @returns {Promise<Chain>}
   */
  async joinChain(invitation, opts) {
    const { signal } = options(opts, 'joinChain(invitation, options)');
    const node = needNode(this.#node);
    const { chain, relays } = expectInvitation(invitation, 'chain');
    await fetchChain(this.#store, node, chain, relays, signal);
    return this.#chains.open(chain);
  }

  /**
   * Starts a replica of another store's chain from its genesis block's `bytes` (then
   * `chain.insert` its blocks).
   * @param {Uint8Array} genesis
   * @returns {Promise<Chain>}
   */
  async chainFromGenesis(genesis) {
    return this.#chains.fromGenesis(genesis);
  }

  /**
   * Reads any invitation (a chain's, an identity's code or link): `{ kind: 'chain', chain,
   * relays, peer }` or `{ kind: 'identity', chain, relays, expires, role, code }`.
   * `INVITATION_INVALID` for anything else.
   * @param {string} text
   */
  parseInvitation(text) {
    return parseInvitation(text);
  }

  /**
   * Creates a person identity whose first device is this one; its keys are sealed in the
   * store under `passphrase` (Argon2id, compared in Unicode NFC). `relays` (default: the
   * node's) go into its DID document.
   * @param {{ name?: string, passphrase: string, relays?: string[] }} opts
   * @returns {Promise<Identity>}
   */
  async createIdentity(opts) {
    return this.#ids().create(options(opts, 'createIdentity'));
  }

  /**
   * Opens a person identity whose chain the store holds, its keys with `passphrase`
   * (`WRONG_PASSPHRASE` otherwise). If the store lacks the identity's messages (a chain
   * resolved but never opened here), they are fetched first (`signal` gives up).
   * @param {string} did
   * @param {{ passphrase: string, signal?: AbortSignal }} opts
   * @returns {Promise<Identity>}
   */
  async openIdentity(did, opts) {
    return this.#ids().open(did, options(opts, 'openIdentity'));
  }

  /**
   * Joins as a new device of the person who made `code` (`identity.inviteDevice()`, code or
   * link): fetches the identity through the relays in the code, writes a request signed by
   * this device's keys and resolves once an existing device approved it.
   * @param {string} code
   * @param {{ passphrase: string, signal?: AbortSignal }} opts
   * @returns {Promise<Identity>}
   */
  async joinAsDevice(code, opts) {
    return this.#ids().joinAsDevice(code, options(opts, 'joinAsDevice'));
  }

  /**
   * Takes back a person with its recovery key (`identity.recoveryKey` when it was created),
   * on this device, when its other devices are lost or stolen: fetches the identity through
   * the node's relays, removes every current device, makes this one its device (new keys,
   * sealed in the store under `passphrase`) and names a new recovery key — on the returned
   * identity's `recoveryKey`, to show the user in place of the old one, which is spent. No
   * device can undo a recovery, whatever it writes and on whatever parents; what the person
   * wrote before stays readable to the devices that had it, not to this one. Rejects with
   * `RECOVERY_KEY_INVALID` for a mistyped code, `REVOKED` for a spent one, `UNAUTHORISED`
   * for another person's, `NOT_FOUND` if no peer served the identity within `timeout` ms.
   * @param {string} did
   * @param {{ recoveryKey: string, passphrase: string, signal?: AbortSignal, timeout?: number }} opts
   * @returns {Promise<Identity>}
   */
  async recoverIdentity(did, opts) {
    return this.#ids().recover(did, options(opts, 'recoverIdentity'));
  }

  /**
   * Resolves any `did:endra:` DID to its W3C DID document (a plain object), with no
   * invitation and no keys: if the store does not hold the identity's chain, it is fetched
   * through the node's relays and the promise waits until it caught up with a peer that
   * holds it; the node keeps it in sync afterwards. Rejects with `NOT_FOUND` when no peer
   * served the chain within `timeout` ms (default 30 s), `ABORTED` on `signal`.
   * @param {string} did
   * @param {{ signal?: AbortSignal, timeout?: number }} [opts]
   */
  async resolve(did, opts) {
    return this.#ids().resolve(did, options(opts, 'resolve'));
  }

  /**
   * Creates a group founded by `person` (an `Identity` of this context).
   * @param {{ name?: string, passphrase: string, person: Identity, relays?: string[] }} opts
   * @returns {Promise<Group>}
   */
  async createGroup(opts) {
    return this.#ids().createGroup(options(opts, 'createGroup'));
  }

  /**
   * Opens a group whose chain the store holds (`endra.resolve(did)` fetches it), fetching its
   * messages first if the store lacks them (`signal` gives up).
   * @param {string} did
   * @param {{ passphrase: string, signal?: AbortSignal }} opts
   * @returns {Promise<Group>}
   */
  async openGroup(did, opts) {
    return this.#ids().openGroup(did, options(opts, 'openGroup'));
  }

  /**
   * Joins a group with an invitation code (`group.invite()`) as `person`; resolves once an
   * admin approved.
   * @param {string} code
   * @param {{ passphrase: string, person: Identity, signal?: AbortSignal }} opts
   * @returns {Promise<Group>}
   */
  async joinGroup(code, opts) {
    return this.#ids().joinGroup(code, options(opts, 'joinGroup'));
  }

  /**
   * Stops the node: closes its connections and stops syncing. Later calls that need it
   * (writes through the chains it syncs included) reject with `NETWORK_STOPPED`; the store
   * stays readable. Calling it again returns the same promise.
   * @returns {Promise<void>}
   */
  stop() {
    this.#stopping ??= this.#node ? stopNode(this.#node) : Promise.resolve();
    return this.#stopping;
  }

  /** `await using endra = await Endra.start(…)` stops it at the end of the block. */
  [Symbol.asyncDispose ?? Symbol.for('Symbol.asyncDispose')]() {
    return this.stop();
  }
}
