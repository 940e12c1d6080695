// @ts-check
// Networking: the libp2p node of the page, which syncs the chains of one store with peers.
import { WasmNode } from './wasm/endra.js';
import { call, EndraError, INTERNAL, internalOnly, options, throwIfAborted } from './errors.js';
import { announce, load, rawStore, Store } from './store.js';

/**
 * A node's `changed` event, as the bindings give it.
 * @typedef {{ type: 'changed', chain: string, count: number, blocks?: import('./chain.js').Block[] }} Change
 */
/** @typedef {(change?: Change) => void} Wake */
/** @typedef {{ type: string, chain: string, resolve: () => void }} Waiter */

// Package-internal access to a node, assigned in the class's static block. Not re-exported by
// index.js: applications get a node from `Endra.start` and use only its public members.
/** @type {(store: Store, relays: string[], maxStoredContentBytes?: number) => Promise<Node>} */
export let startNode;
/** @type {(node: Node) => Promise<void>} */
export let stopNode;
/** @type {(node: Node) => WasmNode} */
export let rawNode;
/** @type {(node: Node, chain: string) => Promise<void>} */
export let openOnNode;
/** @type {(node: Node, chain: string, items: { body: Uint8Array, topics: string[] }[]) => Promise<import('./chain.js').Block[]>} */
export let appendOnNode;
/** @type {(node: Node, chain: string, wake: Wake) => void} */
export let watch;
/** @type {(node: Node, chain: string, wake: Wake) => void} */
export let unwatch;
/** @type {(node: Node, chain: string, signal?: AbortSignal) => Promise<void>} */
export let nextChange;

/**
 * A libp2p node in the page that syncs chains with other devices through relays. Owned by an
 * `Endra` context (`endra.node`), which starts and stops it.
 * Events: `connection` (detail `{ peer, connected }`), `peer` (detail `{ chain, peer, joined }`),
 * `synced` (detail `{ chain }`: the chain caught up with its peers).
 */
export class Node extends EventTarget {
  /** @type {WasmNode} */
  #raw;
  /** @type {Store} */
  #store;
  /** @type {Map<string, Set<Wake>>} */
  #watchers = new Map();
  /** Waiters for the next `changed` or `synced` event of a chain. @type {Set<Waiter>} */
  #waiters = new Set();
  /** @type {Set<string>} */
  #connected = new Set();
  /** @type {string[]} */
  #relays = [];
  /** The page listeners this node added, removed by `stop`. @type {(() => void)[]} */
  #pageListeners = [];
  /** @type {Promise<void> | undefined} */
  #stopping;

  /**
   * @param {symbol} token
   * @param {WasmNode} raw
   * @param {Store} store
   */
  constructor(token, raw, store) {
    internalOnly(token, 'a node comes with its context: (await Endra.start(…)).node');
    super();
    this.#raw = raw;
    this.#store = store;
    // Lost relays are dialled again with backoff; these hints that the network is back make
    // the next attempt happen now. Going offline closes the relay connections at once, so
    // `online` and the `connection` event tell the truth without waiting for pings to fail.
    const reconnect = () => this.#raw.reconnect();
    /**
     * @param {EventTarget | undefined} target
     * @param {string} type
     * @param {() => void} listener
     */
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
   * (writes through the chains it syncs included) reject with `NETWORK_STOPPED`. Calling it
   * again returns the same promise.
   */
  #stop() {
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
   * @param {string} address
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

  /**
   * Dials a peer or relay once, without using it as a relay.
   * @param {string} address
   */
  async dial(address) {
    await call(() => this.#raw.dial(String(address)));
  }

  /**
   * Peer IDs syncing `chain` (an ID) with this node.
   * @param {string} chain
   * @returns {Promise<string[]>}
   */
  peers(chain) {
    return call(() => this.#raw.peers(String(chain)));
  }

  /**
   * Resolves once `chain` (an ID) has caught up with its peers: a peer told this node its
   * leaves and every block they name is stored here. Waits for a peer as long as it takes:
   * pass `signal` to give up (the promise then rejects with `ABORTED`).
   * @param {string} chain
   * @param {{ signal?: AbortSignal }} [opts]
   */
  async synced(chain, opts) {
    const { signal } = options(opts, 'node.synced(chain, options)');
    for (;;) {
      const next = this.#next('synced', String(chain), signal);
      if (await call(() => this.#raw.isSynced(String(chain)))) return;
      throwIfAborted(signal);
      await next;
    }
  }

  /**
   * @param {string} type
   * @param {string} chain
   * @param {AbortSignal} [signal]
   * @returns {Promise<void>}
   */
  #next(type, chain, signal) {
    return new Promise((resolve) => {
      const aborted = () => {
        this.#waiters.delete(waiter);
        resolve();
      };
      // The abort listener goes when the event comes, so waiting in a loop leaves none behind.
      /** @type {Waiter} */
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

  /**
   * @param {string} type
   * @param {string} chain
   */
  #wakeWaiters(type, chain) {
    for (const waiter of [...this.#waiters]) {
      if (waiter.type === type && waiter.chain === chain) {
        this.#waiters.delete(waiter);
        waiter.resolve();
      }
    }
  }

  /** @param {any} event */
  #onEvent(event) {
    switch (event.type) {
      case 'changed':
        for (const wake of this.#watchers.get(event.chain) ?? []) wake(event);
        // Blocks from the network wake this store's other tabs too.
        announce(this.#store, event.chain);
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
      case 'content': {
        const { chain, root, status, done, total } = event;
        this.dispatchEvent(new CustomEvent('content', { detail: { chain, root, status, done, total } }));
        break;
      }
      case 'kept':
        this.dispatchEvent(new CustomEvent('kept', { detail: { chain: event.chain, root: event.root, relay: event.relay } }));
        break;
      default:
        break;
    }
  }

  static {
    startNode = async (store, relays, maxStoredContentBytes) => {
      await load();
      /** @type {Node | undefined} */
      let node;
      const raw = await call(() => WasmNode.start(rawStore(store), (/** @type {any} */ event) => {
        if (node) node.#onEvent(event);
      }, maxStoredContentBytes));
      node = new Node(INTERNAL, raw, store);
      const started = node;
      await Promise.all(relays.map((address) => started.useRelay(address)));
      return node;
    };
    stopNode = (node) => node.#stop();
    rawNode = (node) => node.#raw;
    openOnNode = (node, chain) => call(() => node.#raw.open(chain));
    appendOnNode = (node, chain, items) => call(() => node.#raw.append(chain, items));
    watch = (node, chain, wake) => {
      let wakes = node.#watchers.get(chain);
      if (!wakes) node.#watchers.set(chain, (wakes = new Set()));
      wakes.add(wake);
    };
    unwatch = (node, chain, wake) => {
      node.#watchers.get(chain)?.delete(wake);
    };
    nextChange = (node, chain, signal) => node.#next('changed', chain, signal);
  }
}

/**
 * Uses the relays, asks the chain's peers for it and resolves once its genesis is stored.
 * @param {Store} store
 * @param {Node} node
 * @param {string} chain
 * @param {string[]} relays
 * @param {AbortSignal} [signal]
 */
export async function fetchChain(store, node, chain, relays, signal) {
  await Promise.all(relays.map((address) => node.useRelay(address)));
  await openOnNode(node, chain);
  for (;;) {
    // Wait first, check second: a change between the two is not missed.
    const next = nextChange(node, chain, signal);
    if ((await store.chains()).includes(chain)) return;
    throwIfAborted(signal, 'join aborted');
    await next;
  }
}

/**
 * `node`, or `NOT_CONNECTED` for a context started with `network: false`.
 * @param {Node | null} node
 * @returns {Node}
 */
export function needNode(node) {
  if (!node) throw new EndraError('this Endra context was started without a network (network: false)', 'NOT_CONNECTED');
  return node;
}
