// @ts-check
// Storage: where chains are kept (IndexedDB or memory), and the channel its tabs share.
import init, { WasmStore } from './wasm/endra.js';
import { call, INTERNAL, internalOnly } from './errors.js';

/** @type {Promise<unknown> | undefined} */
let ready;
/** Loads and instantiates the WebAssembly module once. */
export function load() {
  ready ??= init();
  return ready;
}

// Package-internal access to a store, assigned in the class's static block (which alone sees
// its private fields). Not re-exported by index.js.
/** @type {(store: Store) => WasmStore} */
export let rawStore;
/** @type {(store: Store) => BroadcastChannel | null} */
export let storeChannel;
/** @type {(store: Store, chain: string) => void} */
export let announce;

/**
 * Where chains are kept: IndexedDB (persistent) or memory. Hand one to `Endra.start`, or
 * let it open the IndexedDB store by name.
 */
export class Store {
  /** @type {WasmStore} */
  #raw;
  /** @type {BroadcastChannel | null | undefined} */
  #channel;
  /** @type {Set<string>} */
  #announced = new Set();

  /**
   * @param {symbol} token
   * @param {WasmStore} raw
   */
  constructor(token, raw) {
    internalOnly(token, 'use Store.indexedDb(name) or Store.memory()');
    this.#raw = raw;
  }

  /**
   * Opens (creating if needed) the IndexedDB store `name`.
   * @param {string} [name]
   */
  static async indexedDb(name = 'endra') {
    await load();
    return new Store(INTERNAL, await call(() => WasmStore.openIndexedDb(String(name))));
  }

  /** A store in memory, gone with the page. */
  static async memory() {
    await load();
    return new Store(INTERNAL, WasmStore.memory());
  }

  /** The store's name. */
  get name() {
    return this.#raw.name;
  }

  /**
   * IDs of the chains in the store.
   * @returns {Promise<string[]>}
   */
  chains() {
    return call(() => this.#raw.chains());
  }

  /** The channel tabs of this store announce writes on. */
  #channelOf() {
    this.#channel ??= typeof BroadcastChannel === 'function'
      ? new BroadcastChannel(`endra:${this.name}`)
      : null;
    return this.#channel;
  }

  /**
   * Tells the store's other tabs that `chain` changed. Coalesced and sent after the current
   * task: `postMessage` costs a fraction of a millisecond, not to be paid before this tab's
   * own listeners run.
   * @param {string} chain
   */
  #announce(chain) {
    const channel = this.#channelOf();
    if (!channel) return;
    if (this.#announced.size === 0) {
      setTimeout(() => {
        for (const changed of this.#announced) channel.postMessage({ chain: changed });
        this.#announced.clear();
      }, 0);
    }
    this.#announced.add(chain);
  }

  static {
    rawStore = (store) => store.#raw;
    storeChannel = (store) => store.#channelOf();
    announce = (store, chain) => store.#announce(chain);
  }
}
