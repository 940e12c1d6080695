// The JavaScript API of Endra: idiomatic classes over the raw wasm-bindgen exports.
import init, { WasmChain, WasmIdentity, WasmNode, WasmStore } from './wasm/endra.js';

let ready;
/** Loads and instantiates the WebAssembly module once. */
function load() {
  ready ??= init();
  return ready;
}

/** Every failure of the library: an `Error` with a stable `code`. */
export class EndraError extends Error {
  constructor(message, code, options) {
    super(message, options);
    this.name = 'EndraError';
    this.code = code;
  }
}

function wrap(error) {
  if (error instanceof EndraError) return error;
  const code = typeof error?.code === 'string' ? error.code : 'INTERNAL';
  const message = error?.message ?? String(error);
  return new EndraError(message, code, { cause: error });
}

/** Messages from the bindings, each `error` (a plain `Error` with a `code`) as an `EndraError`. */
function readable(messages) {
  for (const message of messages) {
    if (message.error !== undefined) message.error = wrap(message.error);
  }
  return messages;
}

async function call(fn) {
  try {
    return await fn();
  } catch (error) {
    throw wrap(error);
  }
}

function bytes(value, what) {
  if (!(value instanceof Uint8Array)) {
    throw new EndraError(`${what} must be a Uint8Array`, 'INVALID_ARGUMENT');
  }
  return value;
}

/** Where chains are kept: IndexedDB (persistent) or memory. */
export class Store {
  #raw;
  #channel;
  #announced = new Set();

  constructor(raw) {
    this.#raw = raw;
  }

  /** Opens (creating if needed) the IndexedDB store `name`. */
  static async indexedDb(name = 'endra') {
    await load();
    return new Store(await call(() => WasmStore.openIndexedDb(name)));
  }

  /** A store in memory, gone with the page. */
  static async memory() {
    await load();
    return new Store(WasmStore.memory());
  }

  /** The store's name. */
  get name() {
    return this.#raw.name;
  }

  /** IDs of the chains in the store. */
  chains() {
    return call(() => this.#raw.chains());
  }

  /** @internal */
  get raw() {
    return this.#raw;
  }

  /** @internal The channel tabs of this store announce writes on. */
  get channel() {
    this.#channel ??= typeof BroadcastChannel === 'function'
      ? new BroadcastChannel(`endra:${this.name}`)
      : null;
    return this.#channel;
  }

  /**
   * @internal Tells the store's other tabs that `chain` changed. Coalesced and sent after the
   * current task: `postMessage` costs a fraction of a millisecond, not to be paid before this
   * tab's own listeners run.
   */
  announce(chain) {
    if (!this.channel) return;
    if (this.#announced.size === 0) {
      setTimeout(() => {
        for (const changed of this.#announced) this.#channel.postMessage({ chain: changed });
        this.#announced.clear();
      }, 0);
    }
    this.#announced.add(chain);
  }
}

/**
 * A Walytis chain: a DAG of signed blocks with one deterministic order.
 * Dispatches a `block` event (a `CustomEvent` whose `detail` is the Block) for every block
 * that arrives after the first listener is added, written by this page or another tab.
 */
export class Chain extends EventTarget {
  #raw;
  #store;
  #node = null;
  #wakers = new Set();
  #listening = null;
  #closed = false;
  #onMessage;
  /** Blocks the node handed over with its latest changes, by `seq`: read without the store. */
  #recent = [];
  /**
   * The store's block count as far as this handle knows: set by a read that found nothing
   * new, raised by the node's changes; `null` once another writer may have added blocks.
   */
  #count = null;
  /** Bumped whenever `#count` becomes unknown, so a read that raced a write sets nothing. */
  #unknowns = 0;

  constructor(raw, store) {
    super();
    this.#raw = raw;
    this.#store = store;
    this.#onMessage = (event) => {
      if (event.data?.chain === this.id) {
        // Another tab wrote: only the store knows what.
        this.#forgetCount();
        this.#wake();
      }
    };
    store.channel?.addEventListener('message', this.#onMessage);
  }

  /** Creates a chain whose genesis block this device signs; with `node`, syncs it. */
  static async create({ store, node, topics = [], body = new Uint8Array() } = {}) {
    if (!(store instanceof Store)) throw new EndraError('options.store must be a Store', 'INVALID_ARGUMENT');
    const raw = await call(() => WasmChain.create(store.raw, topics, bytes(body, 'body')));
    return new Chain(raw, store).#attach(node);
  }

  /**
   * Joins a chain another device invited this one to: dials the relays in the invitation,
   * fetches the chain from its peers and resolves once its genesis block is stored here.
   */
  static async join(invitation, { store, node, signal } = {}) {
    if (!(store instanceof Store)) throw new EndraError('options.store must be a Store', 'INVALID_ARGUMENT');
    if (!(node instanceof Node)) throw new EndraError('options.node must be a Node', 'INVALID_ARGUMENT');
    const { chain, relays } = parseInvitation(invitation);
    await fetchChain(chain, relays, { store, node, signal });
    return Chain.open(chain, { store, node });
  }

  /** Starts a replica of another store's chain from its genesis block's `bytes`. */
  static async fromGenesis(genesis, { store } = {}) {
    if (!(store instanceof Store)) throw new EndraError('options.store must be a Store', 'INVALID_ARGUMENT');
    const raw = await call(() => WasmChain.fromGenesis(store.raw, bytes(genesis, 'genesis')));
    return new Chain(raw, store);
  }

  /** Opens a chain the store holds; with `node`, syncs it. */
  static async open(id, { store, node } = {}) {
    if (!(store instanceof Store)) throw new EndraError('options.store must be a Store', 'INVALID_ARGUMENT');
    const raw = await call(() => WasmChain.open(store.raw, String(id)));
    return new Chain(raw, store).#attach(node);
  }

  async #attach(node) {
    if (node === undefined || node === null) return this;
    if (!(node instanceof Node)) throw new EndraError('options.node must be a Node', 'INVALID_ARGUMENT');
    this.#node = node;
    node.watch(this.id, this.#wakeAll);
    await node.open(this.id);
    return this;
  }

  /** An invitation other devices pass to `Chain.join`: the chain, the relays, this peer. */
  invite() {
    if (!this.#node) throw new EndraError('the chain is not synced by a Node', 'NOT_CONNECTED');
    const invitation = { v: 1, chain: this.id, relays: this.#node.relays, peer: this.#node.peerId };
    return `endra:${btoa(JSON.stringify(invitation)).replaceAll('+', '-').replaceAll('/', '_').replaceAll('=', '')}`;
  }

  /** Peer IDs currently syncing this chain with this device. */
  peers() {
    if (!this.#node) return Promise.resolve([]);
    return this.#node.peers(this.id);
  }

  /** The chain ID (the CID of its genesis block). */
  get id() {
    return this.#raw.id;
  }

  /** Appends one block; its parents are all current leaves. */
  async addBlock(body, { topics = [] } = {}) {
    const [block] = await this.addBlocks([{ body, topics }]);
    return block;
  }

  /** Appends several blocks in one transaction, in order. */
  async addBlocks(items) {
    const checked = items.map(({ body, topics = [] }) => ({ body: bytes(body, 'body'), topics }));
    // Through the node when synced, so peers get the blocks the moment they exist.
    const blocks = this.#node
      ? await this.#node.append(this.id, checked)
      : await call(() => this.#raw.addBlocks(checked));
    // Through the node, its change event brought the blocks and the count.
    if (!this.#node) this.#forgetCount();
    this.#wake();
    this.#store.announce(this.id);
    return blocks;
  }

  /** Offers encoded blocks received from elsewhere (e.g. another replica). */
  async insert(encoded) {
    const report = await call(() => this.#raw.insert(encoded.map((b) => bytes(b, 'block'))));
    if (report.accepted.length > 0) {
      this.#forgetCount();
      this.#wake();
      this.#store.announce(this.id);
    }
    return report;
  }

  /** One block by ID, or `undefined`. */
  block(id) {
    return call(() => this.#raw.block(String(id)));
  }

  /** A page of blocks in chain order (height, then ID). */
  blocks({ from, limit = 100, reverse = false, topic, author } = {}) {
    return call(() => this.#raw.blocks(from, limit, reverse, topic, author));
  }

  /** IDs of the current leaves. */
  leaves() {
    return call(() => this.#raw.leaves());
  }

  /** Number of blocks, the genesis included. */
  count() {
    return call(() => this.#raw.count());
  }

  /**
   * Every block with `seq` above `since` (all blocks by default), parents before children,
   * each exactly once, then new blocks as they arrive. Resume after a reload by passing the
   * last `seq` seen.
   */
  async *subscribe({ since = -1, signal } = {}) {
    let cursor = since;
    while (!this.#closed && !signal?.aborted) {
      const woken = this.#nextWake(signal);
      // A live block came with the node's event; nothing new if the count says so; else read.
      const handed = this.#recentAfter(cursor);
      if (handed.length === 0 && this.#count !== null && cursor + 1 >= this.#count) {
        await woken;
        continue;
      }
      const unknowns = this.#unknowns;
      const page = handed.length > 0 ? handed : await call(() => this.#raw.since(cursor, 256));
      if (page.length > 0) {
        for (const block of page) {
          cursor = block.seq;
          yield block;
        }
        continue;
      }
      // Nothing after `cursor`: the count, unless another writer came in during the read.
      if (unknowns === this.#unknowns) this.#count = Math.max(this.#count ?? 0, cursor + 1);
      await woken;
    }
  }

  /** Stops subscriptions and events of this handle. */
  close() {
    this.#closed = true;
    this.#node?.unwatch(this.id, this.#wakeAll);
    this.#wake();
    this.#store.channel?.removeEventListener('message', this.#onMessage);
  }

  addEventListener(type, listener, options) {
    super.addEventListener(type, listener, options);
    if (type === 'block' && !this.#listening) this.#listening = this.#dispatchBlocks();
  }

  async #dispatchBlocks() {
    const count = await this.count();
    for await (const block of this.subscribe({ since: count - 1 })) {
      this.dispatchEvent(new CustomEvent('block', { detail: block }));
    }
  }

  #wakeAll = (change) => {
    if (change) {
      // The node's count is exact when it changed the chain, but may trail another tab's
      // write: it raises a known count, never replaces an unknown one.
      if (this.#count !== null) this.#count = Math.max(this.#count, change.count);
      if (change.blocks) {
        this.#recent.push(...change.blocks);
        if (this.#recent.length > 64) this.#recent.splice(0, this.#recent.length - 64);
      }
    }
    this.#wake();
  };

  #forgetCount() {
    this.#count = null;
    this.#unknowns += 1;
  }

  /** The handed-over blocks that directly follow `cursor`, in `seq` order. */
  #recentAfter(cursor) {
    const start = this.#recent.findIndex((block) => block.seq === cursor + 1);
    if (start < 0) return [];
    const run = [this.#recent[start]];
    for (let i = start + 1; i < this.#recent.length && this.#recent[i].seq === run.at(-1).seq + 1; i++) {
      run.push(this.#recent[i]);
    }
    return run;
  }

  #nextWake(signal) {
    return new Promise((resolve) => {
      // One listener per turn, removed when the turn ends, so a long loop does not pile up
      // listeners on its signal.
      const waker = () => {
        this.#wakers.delete(waker);
        signal?.removeEventListener('abort', waker);
        resolve();
      };
      this.#wakers.add(waker);
      signal?.addEventListener('abort', waker, { once: true });
    });
  }

  #wake() {
    for (const waker of [...this.#wakers]) waker();
  }
}

/** Uses the relays, asks the chain's peers for it and resolves once its genesis is stored. */
async function fetchChain(chain, relays, { store, node, signal }) {
  await Promise.all(relays.map((address) => node.useRelay(address)));
  await node.open(chain);
  for (;;) {
    // Wait first, check second: a change between the two is not missed.
    const next = node.nextChange(chain, signal);
    if ((await store.chains()).includes(chain)) return;
    if (signal?.aborted) throw new EndraError('join aborted', 'ABORTED', { cause: signal.reason });
    await next;
  }
}

function parseInvitation(invitation) {
  try {
    const text = String(invitation).trim().replace(/^endra:/, '').replaceAll('-', '+').replaceAll('_', '/');
    const value = JSON.parse(atob(text));
    if (value.v !== 1 || typeof value.chain !== 'string' || !Array.isArray(value.relays)) throw new Error('bad fields');
    return value;
  } catch (error) {
    throw new EndraError('not an Endra invitation', 'INVALID_ARGUMENT', { cause: error });
  }
}

/**
 * A libp2p node in the page that syncs chains with other devices through relays.
 * Events: `connection` (detail `{ peer, connected }`), `peer` (detail `{ chain, peer, joined }`),
 * `synced` (detail `{ chain }`: the chain caught up with its peers).
 */
export class Node extends EventTarget {
  #raw;
  #store;
  #watchers = new Map();
  /** Waiters for the next `changed` or `synced` event of a chain: `{ type, chain, resolve }`. */
  #waiters = new Set();
  #connected = new Set();
  #relays = [];
  /** The page listeners this node added, removed by `stop`. */
  #pageListeners = [];
  #stopping;

  constructor(raw, store) {
    super();
    this.#raw = raw;
    this.#store = store;
    // Lost relays are dialled again with backoff; these hints that the network is back make
    // the next attempt happen now. Going offline closes the relay connections at once, so
    // `online` and the `connection` event tell the truth without waiting for pings to fail.
    const reconnect = () => this.#raw.reconnect();
    const listen = (target, type, listener) => {
      if (!target?.addEventListener) return;
      target.addEventListener(type, listener);
      this.#pageListeners.push(() => target.removeEventListener(type, listener));
    };
    listen(globalThis, 'online', reconnect);
    listen(globalThis, 'offline', () => this.#raw.offline());
    listen(globalThis.document, 'visibilitychange', () => {
      if (document.visibilityState === 'visible') reconnect();
    });
  }

  /**
   * Stops the node: closes its connections and stops syncing. Later calls that need it
   * (writes through the chains it syncs included) reject with `NETWORK_STOPPED`; the store
   * stays usable without a node. Calling it again returns the same promise.
   * `await using node = await Node.start(…)` stops it at the end of the block.
   */
  stop() {
    this.#stopping ??= (async () => {
      for (const remove of this.#pageListeners.splice(0)) remove();
      await call(() => this.#raw.stop());
      // Whoever waits for a change or a sync looks again, and learns that the node stopped.
      for (const waiter of [...this.#waiters]) {
        this.#waiters.delete(waiter);
        waiter.resolve();
      }
      if (this.#connected.size > 0) {
        const peers = [...this.#connected];
        this.#connected.clear();
        for (const peer of peers) {
          this.dispatchEvent(new CustomEvent('connection', { detail: { peer, connected: false } }));
        }
      }
    })();
    return this.#stopping;
  }

  /** `await using`: stops the node. */
  [Symbol.asyncDispose ?? Symbol.for('Symbol.asyncDispose')]() {
    return this.stop();
  }

  /**
   * Starts a node over `store` and uses `relays` (multiaddrs ending in `/p2p/<id>`; give a
   * relay's WebRTC-Direct and WebSocket addresses together and the first to connect wins).
   */
  static async start({ store, relays = [] } = {}) {
    if (!(store instanceof Store)) throw new EndraError('options.store must be a Store', 'INVALID_ARGUMENT');
    await load();
    let node;
    const raw = await call(() => WasmNode.start(store.raw, (event) => node?.#onEvent(event)));
    node = new Node(raw, store);
    await Promise.all(relays.map((address) => node.useRelay(address)));
    return node;
  }

  /** This device's peer ID. */
  get peerId() {
    return this.#raw.peerId;
  }

  /**
   * Whether the node is connected to at least one peer (never while the browser says it is
   * offline: a connection that cannot carry anything is not counted).
   */
  get online() {
    return globalThis.navigator?.onLine !== false && this.#connected.size > 0;
  }

  /** Relays this node dialled (they go into invitations). */
  get relays() {
    return [...this.#relays];
  }

  /**
   * Uses a relay: dials it, becomes reachable through it (`/p2p-circuit`) and finds the other
   * peers of this node's chains there (rendezvous).
   */
  async useRelay(address) {
    await call(() => this.#raw.useRelay(String(address)));
    if (!this.#relays.includes(address)) this.#relays.push(address);
  }

  /**
   * Dials every lost relay now. The node redials lost relays by itself (backoff from 0.5 s up
   * to 30 s, forever) and on the browser's `online` event and when the tab becomes visible;
   * call this when the application knows better that the network is back.
   */
  reconnect() {
    this.#raw.reconnect();
  }

  /** Dials a peer or relay once, without using it as a relay. */
  async dial(address) {
    await call(() => this.#raw.dial(String(address)));
  }

  /** @internal */
  open(chain) {
    return call(() => this.#raw.open(chain));
  }

  /** @internal */
  append(chain, items) {
    return call(() => this.#raw.append(chain, items));
  }

  /** Peer IDs syncing `chain` with this node. */
  peers(chain) {
    return call(() => this.#raw.peers(chain));
  }

  /** @internal */
  watch(chain, wake) {
    if (!this.#watchers.has(chain)) this.#watchers.set(chain, new Set());
    this.#watchers.get(chain).add(wake);
  }

  /** @internal */
  unwatch(chain, wake) {
    this.#watchers.get(chain)?.delete(wake);
  }

  /** @internal The raw wasm node. */
  get raw() {
    return this.#raw;
  }

  /** @internal The store the node syncs. */
  get store() {
    return this.#store;
  }

  /** @internal Resolves at the next change of `chain`. */
  nextChange(chain, signal) {
    return this.#next('changed', chain, signal);
  }

  /**
   * Resolves once `chain` has caught up with its peers: a peer told this node its leaves and
   * every block they name is stored here. Waits for a peer as long as it takes: pass `signal`
   * to give up (the promise then rejects with `ABORTED`).
   */
  async synced(chain, signal) {
    for (;;) {
      const next = this.#next('synced', chain, signal);
      if (await call(() => this.#raw.isSynced(String(chain)))) return;
      if (signal?.aborted) throw new EndraError('aborted', 'ABORTED', { cause: signal.reason });
      await next;
    }
  }

  #next(type, chain, signal) {
    return new Promise((resolve) => {
      const aborted = () => {
        this.#waiters.delete(waiter);
        resolve();
      };
      // The abort listener goes when the event comes, so waiting in a loop leaves none behind.
      const waiter = {
        type,
        chain,
        resolve: () => {
          signal?.removeEventListener('abort', aborted);
          resolve();
        },
      };
      this.#waiters.add(waiter);
      signal?.addEventListener('abort', aborted, { once: true });
    });
  }

  #wakeWaiters(type, chain) {
    for (const waiter of [...this.#waiters]) {
      if (waiter.type === type && waiter.chain === chain) {
        this.#waiters.delete(waiter);
        waiter.resolve();
      }
    }
  }

  #onEvent(event) {
    switch (event.type) {
      case 'changed':
        for (const wake of this.#watchers.get(event.chain) ?? []) wake(event);
        // Blocks from the network wake this store's other tabs too.
        this.#store.announce(event.chain);
        this.#wakeWaiters('changed', event.chain);
        break;
      case 'synced':
        this.#wakeWaiters('synced', event.chain);
        this.dispatchEvent(new CustomEvent('synced', { detail: { chain: event.chain } }));
        break;
      case 'connection':
        if (event.connected) this.#connected.add(event.peer);
        else this.#connected.delete(event.peer);
        this.dispatchEvent(new CustomEvent('connection', { detail: { peer: event.peer, connected: event.connected } }));
        break;
      case 'peer':
        this.dispatchEvent(new CustomEvent('peer', { detail: { chain: event.chain, peer: event.peer, joined: event.joined } }));
        break;
      default:
        break;
    }
  }
}

function checkIdentityOptions({ store, node, passphrase }) {
  if (!(store instanceof Store)) throw new EndraError('options.store must be a Store', 'INVALID_ARGUMENT');
  if (!(node instanceof Node)) throw new EndraError('options.node must be a Node', 'INVALID_ARGUMENT');
  if (typeof passphrase !== 'string' || passphrase === '') {
    throw new EndraError('options.passphrase must be a non-empty string (it encrypts the device keys)', 'INVALID_ARGUMENT');
  }
  // One passphrase, one key: "é" typed as one code point or as e + accent opens the same keys.
  return passphrase.normalize('NFC');
}

/**
 * A DID (`did:endra:<chain-id>`) backed by its own chain: a person controlled by its devices.
 * This device's keys are kept in the store encrypted under `passphrase` (Argon2id).
 *
 * Events: `change` (membership, keys or messages changed), `request` (detail
 * `{ request, member, devices }`: someone presented an invitation; call `approve`),
 * `removed` (this device was removed: it can no longer read new messages or write).
 */
export class Identity extends EventTarget {
  #raw;
  #node;
  #seen = { version: '', requests: new Set(), removed: false };
  #wake = () => this.#update();
  #updating = Promise.resolve();

  /** @internal */
  constructor(raw, node) {
    super();
    this.#raw = raw;
    this.#node = node;
    // Membership changes arrive on the identity chain, messages on its default chain.
    node.watch(raw.chain, this.#wake);
    if (raw.defaultChain) node.watch(raw.defaultChain, this.#wake);
  }

  /** @internal */
  get raw() {
    return this.#raw;
  }

  /** Creates a person identity whose first device is this one. */
  static async create({ store, node, name = '', passphrase, relays } = {}) {
    const secret = checkIdentityOptions({ store, node, passphrase });
    const raw = await call(() => WasmIdentity.create(store.raw, node.raw, String(name), secret, relays ?? node.relays));
    return this.attach(raw, node);
  }

  /**
   * Resolves any `did:endra:` DID to its W3C DID document (a plain object), with no
   * invitation and no keys: if the store does not hold the identity's chain, it is fetched
   * through the node's relays (the chain ID is in the DID) and the promise waits until it
   * caught up with a peer that holds it; the node keeps it in sync afterwards. A chain the
   * store holds resolves at once from what it holds. Rejects with `NOT_FOUND` when no peer
   * served the chain within `timeout` ms (default 30 s), `ABORTED` on `signal`.
   */
  static async resolve(did, { store, node, signal, timeout = 30_000 } = {}) {
    if (!(store instanceof Store)) throw new EndraError('options.store must be a Store', 'INVALID_ARGUMENT');
    if (!(node instanceof Node)) throw new EndraError('options.node must be a Node', 'INVALID_ARGUMENT');
    await load();
    const chain = await call(async () => WasmIdentity.chainOfDid(String(did)));
    if (!(await store.chains()).includes(chain)) {
      const expired = AbortSignal.timeout(timeout);
      const until = signal ? AbortSignal.any([signal, expired]) : expired;
      try {
        // The node already uses its relays: it asks them (and their rendezvous) for the chain.
        await fetchChain(chain, [], { store, node, signal: until });
        await node.synced(chain, until);
      } catch (error) {
        if (expired.aborted && !signal?.aborted) {
          throw new EndraError(`no peer served ${did} within ${timeout} ms`, 'NOT_FOUND', { cause: error });
        }
        throw error;
      }
    } else {
      await node.open(chain);
    }
    return JSON.parse(await call(() => WasmIdentity.resolveDocument(store.raw, chain)));
  }

  /** Opens an identity whose chain the store holds. */
  static async open(did, { store, node, passphrase } = {}) {
    const secret = checkIdentityOptions({ store, node, passphrase });
    const chain = String(did).replace(/^did:endra:/, '');
    const raw = await call(() => WasmIdentity.open(store.raw, node.raw, chain, secret));
    return this.attach(raw, node);
  }

  /**
   * Joins as a new device of the person who made `code` (`identity.inviteDevice()`): fetches
   * the identity through the relays in the code, writes a request signed by this device's
   * keys and resolves once an existing device approved it.
   */
  static async joinAsDevice(code, { store, node, passphrase, signal } = {}) {
    const secret = checkIdentityOptions({ store, node, passphrase });
    const identity = await openInvited(Identity, code, { store, node, passphrase: secret, signal });
    await call(() => identity.raw.requestJoin(String(code)));
    await identity.until((s) => s.current, signal);
    return identity;
  }

  /** @internal Opens a handle and emits the first events. */
  static async attach(raw, node) {
    return new this(raw, node).#started();
  }

  async #started() {
    await this.#update();
    return this;
  }

  /** Resolves when `test(summary)` holds, re-checking at every change of the chain. */
  async until(test, signal) {
    for (;;) {
      const next = this.#node.nextChange(this.#raw.chain, signal);
      if (test(await this.summary())) return;
      if (signal?.aborted) throw new EndraError('aborted', 'ABORTED', { cause: signal.reason });
      await next;
    }
  }

  #update() {
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
      if (version !== this.#seen.version) {
        this.#seen.version = version;
        this.dispatchEvent(new CustomEvent('change', { detail: s }));
      }
      if (s.removed && !this.#seen.removed) {
        this.#seen.removed = true;
        this.dispatchEvent(new CustomEvent('removed', { detail: s }));
      }
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

  /** `{ did, device, kind, name, current, removed, pending, changes, blocks }`. */
  summary() {
    return call(() => this.#raw.summary());
  }

  /** The W3C DID document (a plain object), derived from the chain. */
  async document() {
    return JSON.parse(await call(() => this.#raw.document()));
  }

  /** Current devices: `[{ did, member, current }]` (`current` marks this device). */
  devices() {
    return call(() => this.#raw.devices());
  }

  /**
   * A one-time invitation for a new device, valid `expiresIn` ms (default 10 minutes):
   * `{ code, url, expires }`. The code is the whole invitation (identity, relays, signer).
   */
  async inviteDevice({ expiresIn = 600_000 } = {}) {
    return this.inviteAs('admin', expiresIn);
  }

  /** @internal */
  async inviteAs(role, expiresIn) {
    const { code, expires } = await call(() => this.#raw.invite(role, Number(expiresIn)));
    return { code, url: `endra:join?code=${encodeURIComponent(code)}`, expires };
  }

  /** Lets in the device or member of a pending request (see the `request` event). */
  async approve(request) {
    await call(() => this.#raw.approve(String(request?.request ?? request)));
  }

  /** Removes a device (by its `did:key`): it can neither read what follows nor write. */
  async removeDevice(did) {
    await call(() => this.#raw.remove(String(did)));
  }

  /** Replaces this device's keys; history stays readable (what the policy keeps of it). */
  async rotateKeys() {
    await call(() => this.#raw.rotate());
  }

  /**
   * Sets the policy for epoch keys (admins only), followed by every device:
   * `rekeyEvery` ms — a new epoch before a write once the current one is older (the
   * schedule; removals and rotations always make one); `keepEpochs` — only the newest that
   * many epochs stay readable: older ones are never shared with new devices, not sealed again
   * when a device rotates its keys, and reading them fails with `EPOCH_DISCARDED`. Omit
   * either for no schedule or to keep all history. `summary().policy` shows it.
   */
  async setPolicy({ rekeyEvery, keepEpochs } = {}) {
    const optional = (value) => (value === undefined || value === null ? undefined : Number(value));
    await call(() => this.#raw.setPolicy(optional(rekeyEvery), optional(keepEpochs)));
  }

  /**
   * Writes an encrypted message (bytes) readable by the current devices or members, to the
   * identity's default chain (a chain bound to it, named when it was created: identity
   * chains carry membership ops only).
   */
  write(body, { topics = [] } = {}) {
    return call(() => this.#raw.write(bytes(body, 'body'), topics));
  }

  /**
   * Accepted messages in order: `[{ id, device, time, body }]`; `error` (an `EndraError`)
   * instead of `body` if this device cannot read one.
   */
  messages() {
    return call(async () => readable(await this.#raw.messages()));
  }

  /**
   * Founds a chain bound to this identity — a group's chat, a person's notes — that only its
   * current devices can write (every peer, the relay included, refuses anyone else's blocks)
   * and read (messages are sealed under the identity's epoch key). Share `chain.id` with the
   * other devices or members; they call `openChain(id)`.
   */
  async createChain() {
    return new BoundChain(await call(() => this.#raw.createChain()), this.#node);
  }

  /**
   * Opens a chain bound to this identity by its ID, fetching it from its peers if the store
   * does not hold it (resolves once caught up; `signal` aborts). Rejects with `NOT_BOUND` if
   * the chain is bound to another identity, `UNAUTHORISED` if whoever founded it was not a
   * device of this identity.
   */
  async openChain(id, { signal } = {}) {
    const chain = String(id);
    const store = this.#node.store;
    if (!(await store.chains()).includes(chain)) {
      await fetchChain(chain, [], { store, node: this.#node, signal });
      await this.#node.synced(chain, signal);
    }
    return new BoundChain(await call(() => this.#raw.openChain(chain)), this.#node);
  }

  /** Stops events of this handle. */
  close() {
    this.#node.unwatch(this.#raw.chain, this.#wake);
    if (this.#raw.defaultChain) this.#node.unwatch(this.#raw.defaultChain, this.#wake);
  }
}

/**
 * A chain bound to an identity (`identity.createChain()`, `identity.openChain(id)`): written
 * and read by the identity's current devices only. Event: `change` (new messages, from this
 * page or from peers).
 */
export class BoundChain extends EventTarget {
  #raw;
  #node;
  #wake = () => this.dispatchEvent(new CustomEvent('change'));

  /** @internal */
  constructor(raw, node) {
    super();
    this.#raw = raw;
    this.#node = node;
    node.watch(raw.chain, this.#wake);
  }

  /** The chain ID. */
  get id() {
    return this.#raw.chain;
  }

  /**
   * Writes a message (a `Uint8Array`) sealed under the identity's current epoch;
   * resolves to its block ID. Rejects with `NOT_A_MEMBER` once this device was removed.
   */
  write(body, { topics = [] } = {}) {
    return call(() => this.#raw.write(bytes(body, 'body'), topics));
  }

  /**
   * Messages in order: `[{ id, author, device, time, body }]`; `error` (an `EndraError`)
   * instead of `body` if this device cannot read one.
   */
  messages() {
    return call(async () => readable(await this.#raw.messages()));
  }

  /** Peer IDs syncing this chain with this device. */
  peers() {
    return this.#node.peers(this.id);
  }

  /** Stops events of this handle. */
  close() {
    this.#node.unwatch(this.id, this.#wake);
  }
}

/** Fetches the identity chain named in an invitation code through its relays and opens it. */
async function openInvited(Class, code, { store, node, passphrase, signal }) {
  await load();
  const { chain, relays } = await call(async () => WasmIdentity.parseInvitation(String(code)));
  await fetchChain(chain, relays, { store, node, signal });
  // Caught up before asking to join: every replica admits a request only if its inviter is a
  // device in the request's own history, which is what this device holds when it writes it.
  await node.synced(chain, signal);
  return Class.attach(await call(() => WasmIdentity.open(store.raw, node.raw, chain, passphrase)), node);
}

/**
 * A group DID controlled by its admins (persons), read and written by its members.
 * Events as for `Identity`.
 */
export class Group extends Identity {
  /** Creates a group founded by `person` (an `Identity` of this device). */
  static async create({ store, node, name = '', passphrase, relays, person } = {}) {
    const secret = checkIdentityOptions({ store, node, passphrase });
    if (!(person instanceof Identity)) throw new EndraError('options.person must be an Identity', 'INVALID_ARGUMENT');
    const raw = await call(() => WasmIdentity.createGroup(store.raw, node.raw, String(name), secret, relays ?? node.relays, person.raw));
    return Group.attach(raw, node);
  }

  /** Joins with an invitation code as `person`; resolves once an admin approved. */
  static async join(code, { store, node, passphrase, person, signal } = {}) {
    const secret = checkIdentityOptions({ store, node, passphrase });
    if (!(person instanceof Identity)) throw new EndraError('options.person must be an Identity', 'INVALID_ARGUMENT');
    const group = await openInvited(Group, code, { store, node, passphrase: secret, signal });
    await call(() => group.raw.requestJoinAs(String(code), person.raw));
    await group.until((s) => s.current, signal);
    return group;
  }

  /** A one-time invitation for a person (`role`: 'member' or 'admin'). */
  invite({ role = 'member', expiresIn = 600_000 } = {}) {
    return this.inviteAs(role, expiresIn);
  }

  /** Current members `[{ did, role, devices }]`. */
  members() {
    return call(() => this.raw.members());
  }

  /** Removes a member (by person DID) and rekeys. */
  async remove(did) {
    await call(() => this.raw.remove(String(did)));
  }

  /** Leaves the group. */
  async leave() {
    await call(() => this.raw.leave());
  }
}
