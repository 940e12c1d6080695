/** Stable error codes of {@link EndraError}. */
export type ErrorCode =
  | 'INVALID_ARGUMENT'
  | 'NOT_FOUND'
  | 'BLOCK_INVALID'
  | 'PENDING_FULL'
  | 'STORE_FOREIGN'
  | 'STORE_CORRUPT'
  | 'STORE_CONFLICT'
  | 'STORE_FAILED'
  | 'NOT_CONNECTED'
  | 'UNREACHABLE'
  | 'NETWORK_SETUP'
  | 'NETWORK_STOPPED'
  | 'ABORTED'
  | 'INTERNAL';

/** Every failure of the library. */
export class EndraError extends Error {
  readonly name: 'EndraError';
  /** What went wrong, stable across versions. */
  readonly code: ErrorCode;
  readonly cause?: unknown;
}

/** A block as the API returns it. */
export interface Block {
  /** Content address: CIDv1 (dag-cbor, sha2-256), base32 (`bafyrei…`). */
  readonly id: string;
  /** The chain's ID (the ID of its genesis block). */
  readonly chain: string;
  /** IDs of the leaves the author knew, sorted. Empty for the genesis. */
  readonly parents: string[];
  /** One more than the highest parent's height; 0 for the genesis. */
  readonly height: number;
  /** The author's Ed25519 public key, 64 hex digits. */
  readonly author: string;
  /** The author's clock when writing, ms since the epoch. Informational only. */
  readonly time: number;
  /** The block's topics, sorted. */
  readonly topics: string[];
  /** The content. */
  readonly body: Uint8Array;
  /** Arrival number in this store: the cursor for {@link Chain.subscribe}. */
  readonly seq: number;
  /** The canonical encoding (DAG-CBOR); `id` is its hash. */
  readonly bytes: Uint8Array;
}

/** What {@link Chain.insert} did with each offered block. */
export interface InsertReport {
  /** Accepted blocks, parents first (offered ones and pending ones they completed). */
  accepted: Block[];
  /** IDs of offered blocks waiting for missing parents. */
  waiting: string[];
  /** IDs of offered blocks the chain already had. */
  duplicates: string[];
  /** Offered blocks refused, with the reason. */
  rejected: { id: string; code: ErrorCode; message: string }[];
}

/** Where chains are kept. */
export class Store {
  /** Opens (creating if needed) the IndexedDB store `name` (default `'endra'`). */
  static indexedDb(name?: string): Promise<Store>;
  /** A store in memory, gone with the page. */
  static memory(): Promise<Store>;
  /** The store's name. */
  readonly name: string;
  /** IDs of the chains in the store. */
  chains(): Promise<string[]>;
}

export interface BlocksOptions {
  /** ID of the last block of the previous page (exclusive). */
  from?: string;
  /** Most blocks to return (default 100). */
  limit?: number;
  /** Newest first. */
  reverse?: boolean;
  /** Only blocks with this topic. */
  topic?: string;
  /** Only blocks by this author (64 hex digits). */
  author?: string;
}

export interface ChainEventMap {
  block: CustomEvent<Block>;
}

/**
 * A Walytis chain: a DAG of signed blocks in one deterministic order (height, then ID).
 * Dispatches `block` for every new block once a listener is added (this page or another tab).
 */
export class Chain extends EventTarget {
  /** Creates a chain whose genesis block this device signs; with `node`, syncs it. */
  static create(options: { store: Store; node?: Node; topics?: string[]; body?: Uint8Array }): Promise<Chain>;
  /**
   * Joins a chain another device invited this one to: dials the invitation's relays and
   * resolves once the chain's genesis block is stored here (blocks keep arriving after).
   */
  static join(invitation: string, options: { store: Store; node: Node; signal?: AbortSignal }): Promise<Chain>;
  /** Starts a replica of another store's chain from its genesis block's `bytes`. */
  static fromGenesis(genesis: Uint8Array, options: { store: Store }): Promise<Chain>;
  /** Opens a chain the store holds (`NOT_FOUND` otherwise); with `node`, syncs it. */
  static open(id: string, options: { store: Store; node?: Node }): Promise<Chain>;
  /** The chain ID. */
  readonly id: string;
  /** Appends one block on top of all current leaves. */
  addBlock(body: Uint8Array, options?: { topics?: string[] }): Promise<Block>;
  /** Appends several blocks, in order, in one transaction. */
  addBlocks(items: Array<{ body: Uint8Array; topics?: string[] }>): Promise<Block[]>;
  /** Offers encoded blocks received from elsewhere. */
  insert(encoded: Uint8Array[]): Promise<InsertReport>;
  /** One block by ID. */
  block(id: string): Promise<Block | undefined>;
  /** A page of blocks in chain order. */
  blocks(options?: BlocksOptions): Promise<Block[]>;
  /** IDs of the current leaves. */
  leaves(): Promise<string[]>;
  /** Number of blocks, the genesis included. */
  count(): Promise<number>;
  /**
   * Every block with `seq` above `since` (default: all), parents before children, each
   * exactly once, then new blocks as they arrive (from this page and other tabs).
   */
  subscribe(options?: { since?: number; signal?: AbortSignal }): AsyncIterableIterator<Block>;
  /** Ends subscriptions and events of this handle. */
  close(): void;
  /** An invitation string for `Chain.join` on another device (`NOT_CONNECTED` without a node). */
  invite(): string;
  /** Peer IDs currently syncing this chain with this device (empty without a node). */
  peers(): Promise<string[]>;
  addEventListener<K extends keyof ChainEventMap>(
    type: K,
    listener: (this: Chain, event: ChainEventMap[K]) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
}

export interface NodeEventMap {
  /** A connection to a peer opened or closed. */
  connection: CustomEvent<{ peer: string; connected: boolean }>;
  /** A peer started or stopped syncing one of this node's chains. */
  peer: CustomEvent<{ chain: string; peer: string; joined: boolean }>;
}

/**
 * A libp2p node in the page that syncs chains with other devices through relays
 * (WebSocket or WebRTC-Direct). Each page load gets a fresh peer ID.
 */
export class Node extends EventTarget {
  /**
   * Starts a node over `store` and uses `relays` (multiaddrs ending in `/p2p/<id>`). Give a
   * relay's WebRTC-Direct and WebSocket addresses together: the first to connect wins.
   */
  static start(options: { store: Store; relays?: string[] }): Promise<Node>;
  /** This page's peer ID. */
  readonly peerId: string;
  /** Whether the node is connected to at least one peer. */
  readonly online: boolean;
  /** The relays this node dialled; they go into invitations. */
  readonly relays: string[];
  /**
   * Uses a relay: dials it, becomes reachable through it (`/p2p-circuit`) and finds the other
   * peers of this node's chains there (rendezvous).
   */
  useRelay(address: string): Promise<void>;
  /** Dials a peer or relay once, without using it as a relay. */
  dial(address: string): Promise<void>;
  /** Peer IDs syncing `chain` with this node. */
  peers(chain: string): Promise<string[]>;
  addEventListener<K extends keyof NodeEventMap>(
    type: K,
    listener: (this: Node, event: NodeEventMap[K]) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
}
