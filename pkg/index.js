// The JavaScript API of Endra: idiomatic classes over the raw wasm-bindgen exports.
import init, { WasmChain, WasmStore } from './wasm/endra.js';

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
}

/**
 * A Walytis chain: a DAG of signed blocks with one deterministic order.
 * Dispatches a `block` event (a `CustomEvent` whose `detail` is the Block) for every block
 * that arrives after the first listener is added, written by this page or another tab.
 */
export class Chain extends EventTarget {
  #raw;
  #store;
  #wakers = new Set();
  #listening = null;
  #closed = false;
  #onMessage;

  constructor(raw, store) {
    super();
    this.#raw = raw;
    this.#store = store;
    this.#onMessage = (event) => {
      if (event.data?.chain === this.id) this.#wake();
    };
    store.channel?.addEventListener('message', this.#onMessage);
  }

  /** Creates a chain whose genesis block this device signs. */
  static async create({ store, topics = [], body = new Uint8Array() } = {}) {
    if (!(store instanceof Store)) throw new EndraError('options.store must be a Store', 'INVALID_ARGUMENT');
    const raw = await call(() => WasmChain.create(store.raw, topics, bytes(body, 'body')));
    return new Chain(raw, store);
  }

  /** Starts a replica of another store's chain from its genesis block's `bytes`. */
  static async fromGenesis(genesis, { store } = {}) {
    if (!(store instanceof Store)) throw new EndraError('options.store must be a Store', 'INVALID_ARGUMENT');
    const raw = await call(() => WasmChain.fromGenesis(store.raw, bytes(genesis, 'genesis')));
    return new Chain(raw, store);
  }

  /** Opens a chain the store holds. */
  static async open(id, { store } = {}) {
    if (!(store instanceof Store)) throw new EndraError('options.store must be a Store', 'INVALID_ARGUMENT');
    const raw = await call(() => WasmChain.open(store.raw, String(id)));
    return new Chain(raw, store);
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
    const blocks = await call(() => this.#raw.addBlocks(checked));
    this.#wake();
    this.#store.channel?.postMessage({ chain: this.id });
    return blocks;
  }

  /** Offers encoded blocks received from elsewhere (e.g. another replica). */
  async insert(encoded) {
    const report = await call(() => this.#raw.insert(encoded.map((b) => bytes(b, 'block'))));
    if (report.accepted.length > 0) {
      this.#wake();
      this.#store.channel?.postMessage({ chain: this.id });
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
      const page = await call(() => this.#raw.since(cursor, 256));
      if (page.length > 0) {
        for (const block of page) {
          cursor = block.seq;
          yield block;
        }
        continue;
      }
      await woken;
    }
  }

  /** Stops subscriptions and events of this handle. */
  close() {
    this.#closed = true;
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

  #nextWake(signal) {
    return new Promise((resolve) => {
      const waker = () => {
        this.#wakers.delete(waker);
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
