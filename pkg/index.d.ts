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
  | 'NOT_A_MEMBER'
  | 'NOT_PERMITTED'
  // Refusals of a block by a chain's rule, each saying which rule refused it and why.
  | 'UNAUTHORISED'
  | 'REVOKED'
  | 'REVOKED_CONCURRENTLY'
  | 'MALFORMED_OP'
  | 'MALFORMED_BOUND_BLOCK'
  | 'ANCHOR_BEHIND'
  | 'BUILDS_ON_REMOVED'
  | 'NOT_A_WRITER'
  | 'NO_WRITERS'
  | 'ANCESTOR_REFUSED'
  | 'AUTHORITY_UNSEEN'
  /** The chain's genesis claims a kind of chain (or a version of one) this build does not know. */
  | 'UNKNOWN_RULE'
  | 'AWAITING_AUTHORITY'
  /** Content sealed by a newer client: a kind of content or an envelope version this build does not read. */
  | 'UNSUPPORTED_CONTENT'
  | 'MALFORMED_CONTENT'
  // Records and offchain content.
  | 'RECORD_DELETED'
  | 'NOT_THE_AUTHOR'
  | 'CONTENT_UNAVAILABLE'
  | 'CONTENT_TOO_LARGE'
  /** The content does not fit in this device's quota of stored content (`maxStoredContentBytes`). */
  | 'CONTENT_QUOTA_EXCEEDED'
  | 'CONTENT_INVALID'
  | 'NOT_BOUND'
  | 'NO_KEY'
  | 'EPOCH_DISCARDED'
  /** The only copy of an epoch key sealed to this device is not the key its epoch commits to. */
  | 'EPOCH_KEY_FORGED'
  /** A recovery code that does not parse or whose checksum fails (a character is wrong). */
  | 'RECOVERY_KEY_INVALID'
  /** A group's join or device list names devices that the member's own person chain does not list. */
  | 'NOT_THE_PERSONS'
  | 'WRONG_PASSPHRASE'
  | 'KEYSTORE_INVALID'
  | 'KEY_INVALID'
  | 'IDENTITY_INVALID'
  | 'INVITATION_INVALID'
  | 'INVITATION_EXPIRED'
  | 'INVITATION_USED'
  | 'INVITATION_FORGED'
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

/**
 * Where chains are kept. Pass one to `Endra.start({ store })` (or just a name there); not
 * constructible.
 */
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
 * A Walytis chain: a DAG of signed blocks in one deterministic order (height, then ID), in
 * its context's store and synced by its node. Get one from {@link Endra}: `createChain`,
 * `openChain`, `joinChain`, `chainFromGenesis` (not constructible).
 * Dispatches `block` for every new block once a listener is added (this page or another tab).
 */
export class Chain extends EventTarget {
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
  /**
   * An invitation string (`endra:…`) for `endra.joinChain` on another device: the chain, the
   * node's relays, this peer (`NOT_CONNECTED` in a context started with `network: false`).
   */
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
  /** A chain caught up with its peers (every block a peer's leaves name is stored here). */
  synced: CustomEvent<{ chain: string }>;
  /** A verified piece of an offchain content being fetched arrived (see {@link ContentProgress}). */
  content: CustomEvent<ContentProgress>;
  /** A relay holds, whole and verified, a content this node offered it (see {@link ContentKept}). */
  kept: CustomEvent<ContentKept>;
}

/** Where a record's content stands on this device. */
export type ContentStatus = 'available' | 'fetching' | 'missing' | 'erased' | 'none';

/** Progress of a content being fetched: `done` of `total` sealed bytes while fetching. */
export interface ContentProgress {
  readonly chain: string;
  /** The content's root (hex). */
  readonly root: string;
  readonly status: 'available' | 'fetching' | 'missing' | 'erased';
  readonly done?: number;
  readonly total?: number;
}

/**
 * A relay holds all of a content this device posted, every segment verified there (the
 * relay's word): the chain's other devices can have it while this one is offline — the
 * moment a page showing a large upload can say "sent".
 */
export interface ContentKept {
  readonly chain: string;
  /** The content's root (hex), as {@link Record.root} names it. */
  readonly root: string;
  /** The relay's peer ID. */
  readonly relay: string;
}

/** One version in a record's history. */
export interface RecordVersion {
  /** The version's block ID. */
  readonly id: string;
  /** The signing key (hex) of the device that wrote it. */
  readonly device: string;
  readonly kind: 'created' | 'edited' | 'deleted';
  /** Its block's time (informational: no rule reads it). */
  readonly time: number;
  /** Whether its content was erased. */
  readonly erased: boolean;
  /** Its content's root (hex), as {@link ContentProgress} names it. */
  readonly root?: string;
  readonly type?: string;
  readonly size?: number;
}

/**
 * A record of a bound chain (`chain.post`, `chain.records`), as this device saw it when
 * listed: private content its author edits and deletes, every version kept. Not
 * constructible.
 */
export class Record {
  private constructor();
  /** The record's ID: its first version's block ID. */
  readonly id: string;
  /** The DID of the person who wrote it. */
  readonly author: string;
  /** The current version's ID; `null` once deleted. */
  readonly current: string | null;
  /** The delete's ID, if deleted. */
  readonly deleted: string | null;
  /** Whether a delete erased the content of every version. */
  readonly erased: boolean;
  /** Edits concurrent with the current version. */
  readonly conflicts: string[];
  /** The current content's root (hex), as {@link ContentProgress} names it. */
  readonly root?: string;
  readonly type?: string;
  readonly size?: number;
  readonly status: ContentStatus;
  readonly done?: number;
  readonly total?: number;
  /** The current content is over the chain's `maxContentBytes` and not here: not fetched. */
  readonly tooLarge: boolean;
  /**
   * The current content is not here and its last fetch found no room in this device's quota
   * of stored content (`maxStoredContentBytes`): asked again at each listing, fetched once
   * erasures make room.
   */
  readonly waitingForRoom: boolean;
  /**
   * Whether the current content is one this device posted that no relay holds whole yet
   * ("sending"): false once a relay keeps it (the chain's `kept` event), across reloads.
   */
  readonly waitingForRelay: boolean;
  /** Every version in causal order, deleted ones included. */
  readonly history: RecordVersion[];
  /** Versions every replica refused (an edit by someone other than the author, say). */
  readonly refused: { readonly id: string; readonly reason: string }[];
  /**
   * The current content (or that of `version`), fetched from the chain's peers (the relay
   * included) if this device lacks it, verified and decrypted. `RECORD_DELETED`,
   * `CONTENT_UNAVAILABLE` (erased), `NO_KEY` (posted after this device was removed),
   * `CONTENT_TOO_LARGE` (over the chain's `maxContentBytes` and not here),
   * `CONTENT_QUOTA_EXCEEDED` (not here, and no room for it in `maxStoredContentBytes`).
   */
  content(options?: { version?: string }): Promise<Uint8Array>;
  /**
   * The content as a stream of its segments (64 KiB at most, each opened as it is read): a
   * large content is never held whole. Fetched first if missing; errors as `content()`.
   */
  stream(options?: { version?: string }): ReadableStream<Uint8Array>;
  /** {@link Record.content} as UTF-8 text. */
  text(options?: { version?: string }): Promise<string>;
  /** Edits the record (its author's devices: `NOT_THE_AUTHOR` otherwise); the new version's ID. */
  edit(content: Uint8Array | string | Blob | ReadableStream<Uint8Array>, options?: { type?: string }): Promise<string>;
  /**
   * Deletes it (its author or an admin: `NOT_PERMITTED` otherwise); with `erase`, every
   * member's device drops every version's content when it next lists the chain, and the
   * relays this page reaches now drop their copies, shown each content's erase secret (a
   * relay unreachable now is asked when this device next connects to it, across reloads).
   */
  delete(options?: { erase?: boolean }): Promise<string>;
}

/**
 * A libp2p node in the page that syncs its context's chains with other devices through
 * relays (WebSocket or WebRTC-Direct): `endra.node`, started and stopped by its
 * {@link Endra} (not constructible). Each page load gets a fresh peer ID.
 */
export class Node extends EventTarget {
  /** This page's peer ID. */
  readonly peerId: string;
  /**
   * Whether the node is connected to at least one peer; `false` while the browser is offline
   * (its `offline` event also closes the relay connections).
   */
  readonly online: boolean;
  /** The relays this node dialled; they go into invitations. */
  readonly relays: string[];
  /**
   * Uses a relay: dials it, becomes reachable through it (`/p2p-circuit`) and finds the other
   * peers of this node's chains there (rendezvous).
   */
  useRelay(address: string): Promise<void>;
  /**
   * Dials every lost relay now. Lost relays are dialled again by themselves (backoff from
   * 0.5 s to 30 s, with jitter, for as long as the node runs), at once on the browser's
   * `online` event and when the tab becomes visible; on reconnecting the node restores its
   * subscriptions, the heads exchange of every open chain, its `/p2p-circuit` reservation
   * and rendezvous registrations.
   */
  reconnect(): void;
  /** Dials a peer or relay once, without using it as a relay. */
  dial(address: string): Promise<void>;
  /** Peer IDs syncing `chain` with this node. */
  peers(chain: string): Promise<string[]>;
  /**
   * Resolves once `chain` caught up with its peers; waits for a peer as long as it takes
   * (`signal` gives up, rejecting with `ABORTED`).
   */
  synced(chain: string, options?: { signal?: AbortSignal }): Promise<void>;
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

/** What opens an identity's keys. */
export interface PassphraseOptions {
  /**
   * Encrypts this device's keys in the store (Argon2id); the same one opens them later.
   * Compared in Unicode NFC. Given per call: plain chains need none, each identity or group
   * may have its own, and the context does not keep it.
   */
  passphrase: string;
}

/** What {@link Identity.summary} returns. */
export interface IdentitySummary {
  readonly did: string;
  /** This device's DID (`did:key:z…`). */
  readonly device: string;
  readonly kind: 'person' | 'group';
  readonly name: string;
  /** Whether this device is currently one of the identity's devices. */
  readonly current: boolean;
  /** Whether this device was removed (for good). */
  readonly removed: boolean;
  /** Join requests waiting for approval. */
  readonly pending: JoinRequest[];
  /** Number of membership and key changes so far. */
  readonly changes: number;
  /** Number of blocks of the identity chain. */
  readonly blocks: number;
  /** The policy for epoch keys (`null`: no schedule, all history kept). */
  readonly policy: { readonly rekeyEvery: number | null; readonly keepEpochs: number | null };
}

/** What `setPolicy` takes. */
export interface IdentityPolicy {
  /** Milliseconds after which a write first makes a new epoch. */
  rekeyEvery?: number;
  /** How many of the newest epochs stay readable. */
  keepEpochs?: number;
}

/** Someone presented an invitation. */
export interface JoinRequest {
  /** The request block's ID: pass it (or this object) to `approve`. */
  readonly request: string;
  /** The would-be member's DID (a device's `did:key`, or a person's `did:endra`). */
  readonly member: string;
  readonly devices: string[];
}

/** A one-time invitation. */
export interface IdentityInvitation {
  /** The whole invitation as a copyable string (`endra-invite:…`): what `joinAsDevice`/`joinGroup` take. */
  readonly code: string;
  /** The same as a link (`endra:join?code=…`) for a QR code; `joinAsDevice`/`joinGroup` take it too. */
  readonly url: string;
  /** Expiry, ms since the epoch. */
  readonly expires: number;
}

/** A current device. */
export interface IdentityDevice {
  readonly did: string;
  /** The member it belongs to. */
  readonly member: string;
  /** Whether it is this device. */
  readonly current: boolean;
}

/** A decrypted message of an identity or group. */
export interface IdentityMessage {
  readonly id: string;
  /** Author key, 64 hex digits. */
  readonly author: string;
  /** Author device DID, if the device is still current. */
  readonly device?: string;
  readonly time: number;
  readonly body?: Uint8Array;
  /**
   * Why the body could not be read: `NO_KEY` (no key for its epoch), `EPOCH_DISCARDED`,
   * `UNSUPPORTED_CONTENT` (a newer client's kind of content), `MALFORMED_CONTENT`, ...
   */
  readonly error?: EndraError;
}

/** A W3C DID Core document. */
export interface DidDocument {
  readonly '@context': string[];
  readonly id: string;
  readonly controller: string[];
  readonly verificationMethod: { id: string; type: 'Multikey'; controller: string; publicKeyMultibase: string }[];
  readonly authentication: string[];
  readonly assertionMethod: string[];
  readonly keyAgreement: string[];
  readonly service: { id: string; type: string; serviceEndpoint: string }[];
  readonly [extension: string]: unknown;
}

interface IdentityEventMap {
  change: CustomEvent<IdentitySummary>;
  request: CustomEvent<JoinRequest>;
  removed: CustomEvent<IdentitySummary>;
  error: CustomEvent<EndraError>;
}

/**
 * What {@link Identity} and {@link Group} share (not exported at runtime: use those two
 * classes with `instanceof`).
 */
declare abstract class Controlled extends EventTarget {
  /** `did:endra:<chain-id>`. */
  readonly did: string;
  /** The identity chain's ID. */
  readonly chain: string;
  summary(): Promise<IdentitySummary>;
  /**
   * Resolves when `test(summary)` holds, checking again at every change of the chain
   * (`signal` rejects it with `ABORTED`).
   */
  until(test: (summary: IdentitySummary) => boolean, options?: { signal?: AbortSignal }): Promise<void>;
  document(): Promise<DidDocument>;
  /** Lets in the device or member of a pending request (see the `request` event). */
  approve(request: string | JoinRequest): Promise<void>;
  /**
   * Sets the policy for epoch keys (admins only): `rekeyEvery` ms between scheduled epochs,
   * `keepEpochs` epochs kept readable (older ones fail with `EPOCH_DISCARDED`). Omitted: no
   * schedule, all history kept.
   */
  setPolicy(policy: IdentityPolicy): Promise<void>;
  /**
   * Encrypts and writes to the identity's default chain (a chain bound to it, named at its
   * creation: the identity chain itself carries membership ops only); resolves to the block ID.
   */
  write(body: Uint8Array, options?: { topics?: string[] }): Promise<string>;
  /** The default chain's messages, in chain order (a joining device has fetched them before its join resolves). */
  messages(): Promise<IdentityMessage[]>;
  /**
   * Founds a chain bound to this identity (a group's chat, a person's notes): only the
   * identity's current devices can write it — every peer, the relay included, refuses other
   * blocks — and read it (sealed under the identity's epoch key).
   */
  createChain(): Promise<BoundChain>;
  /**
   * Opens a chain bound to this identity, fetching it from its peers if the store lacks it.
   * Rejects with `NOT_BOUND` (bound to another identity) or `UNAUTHORISED` (founded by a
   * device that was not one of this identity's). `maxContentBytes`: the chain's limit from
   * the start, before it fetches anything (see `BoundChain.maxContentBytes`).
   */
  openChain(id: string, options?: { signal?: AbortSignal; maxContentBytes?: number }): Promise<BoundChain>;
  /** Stops events of this handle. */
  close(): void;
  addEventListener<K extends keyof IdentityEventMap>(
    type: K,
    listener: (event: IdentityEventMap[K]) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions): void;
}

/**
 * A person DID (`did:endra:<chain-id>`) controlled by its devices: `endra.createIdentity`,
 * `endra.openIdentity`, `endra.joinAsDevice` (not constructible).
 */
export class Identity extends Controlled {
  /**
   * The person's recovery code (`endra-recovery:…`) on the object `createIdentity` or
   * `recoverIdentity` returned, to show the user once; never stored, so `undefined` on an
   * identity opened or joined.
   */
  readonly recoveryKey: string | undefined;
  /** Current devices (`current` marks this one). */
  devices(): Promise<IdentityDevice[]>;
  /** A one-time invitation for a new device (`endra.joinAsDevice` on it). */
  inviteDevice(options?: { expiresIn?: number }): Promise<IdentityInvitation>;
  /**
   * Removes a device and makes a new epoch. The bound chains opened from this object are
   * acknowledged first, so that the removed device's messages this device holds stay shown.
   */
  removeDevice(did: string): Promise<void>;
  /**
   * Replaces this device's keys; history stays readable (what the policy keeps of it). The
   * new keys are sealed in the store under `passphrase` before the rotation is written, so
   * a reload opens with them. A wrong passphrase fails with `WRONG_PASSPHRASE`.
   */
  rotateKeys(options: { passphrase: string }): Promise<void>;
}

/** What {@link BoundChain.recordEvents} tells of one version of a record. */
export interface RecordEvent {
  /** Its number in this store's record log of the chain, from 0: the cursor to resume. */
  readonly seq: number;
  readonly kind: 'created' | 'edited' | 'deleted' | 'content' | 'withdrawn';
  /** The record (its first version's ID). */
  readonly record: string;
  /** The version told of (a block ID). */
  readonly version: string;
  /** On an erasing delete: every version's content is gone. */
  readonly erase?: true;
}

/** A message of a {@link BoundChain} subscription: with its block's arrival number. */
export interface SubscribedMessage extends IdentityMessage {
  /** The block's `seq` in this store: pass the last one seen as `since` to resume. */
  readonly seq: number;
}

/**
 * A chain bound to an identity: written and read by its current devices only
 * (`identity.createChain()`, `identity.openChain(id)`; not constructible).
 */
export class BoundChain extends EventTarget {
  /** The chain ID: what other devices pass to `identity.openChain`. */
  readonly id: string;
  /**
   * The largest content this handle posts, fetches or reads, in bytes (default and most:
   * 100 MiB). `post`/`edit` over it reject with `CONTENT_TOO_LARGE` before reading; a record
   * over it that is not here is not fetched (`tooLarge`) and reading it rejects likewise.
   * Raised, the contents now within it are fetched.
   */
  maxContentBytes: number;
  /** Seals and writes a message; resolves to its block ID. `NOT_A_MEMBER` once removed. */
  write(body: Uint8Array, options?: { topics?: string[] }): Promise<string>;
  /**
   * Messages in chain order (`error` instead of `body` where this device has no key). A
   * removed device's message is shown only if a current device built on it before hearing
   * of the removal: its blocks written "into the past" are stored but never shown.
   */
  messages(): Promise<IdentityMessage[]>;
  /**
   * Every message whose block arrived in this store after `since` (a `seq`, as for
   * {@link Chain.subscribe}; default: all), each exactly once, in arrival order (parents
   * before children), then new ones as they arrive from this page, other tabs or peers.
   * Blocks not shown as messages (the genesis, a removed device's blocks written "into the
   * past") are skipped. A message comes as it reads on arrival: one this device has no key
   * for yet carries `error` (`messages()` shows it again once readable).
   */
  subscribe(options?: { since?: number; signal?: AbortSignal }): AsyncIterableIterator<SubscribedMessage>;
  /**
   * Record events after `since` (a `seq` of these events; default: all), each exactly once,
   * then new ones as they come: `created`/`edited`/`deleted` (`erase: true` for an erasing
   * delete) when a version becomes valid, each after the versions it saw; `content` once a
   * version's content is all here, verified; `withdrawn` when a version told before is no
   * longer shown (its device was removed before a current device built on it; told again if
   * it comes back). Kept in the store: pass the last `seq` seen to resume after a reload.
   */
  recordEvents(options?: { since?: number; signal?: AbortSignal }): AsyncIterableIterator<RecordEvent>;
  /**
   * Posts a record: the content (bytes, text, a `Blob`/`File` or a `ReadableStream`; at most
   * 100 MiB) is sealed into this device's content store, never into the chain, and offered
   * to the relays, which keep it as ciphertext for members who are offline. A text of up to
   * 64 KiB travels with its block; a `Blob` is read 64 KiB at a time, never whole in memory.
   */
  post(content: Uint8Array | string | Blob | ReadableStream<Uint8Array>, options?: { type?: string }): Promise<Record>;
  /** Every record this device can read, in chain order. */
  records(): Promise<Record[]>;
  /** One record by ID, if held. */
  record(id: string): Promise<Record | undefined>;
  peers(): Promise<string[]>;
  /** Stops events and subscriptions of this handle. */
  close(): void;
  addEventListener(type: 'change', listener: (event: CustomEvent<void>) => void, options?: boolean | AddEventListenerOptions): void;
  /** A content of this chain being fetched got a verified piece. */
  addEventListener(type: 'progress', listener: (event: CustomEvent<ContentProgress>) => void, options?: boolean | AddEventListenerOptions): void;
  /** A relay holds, whole and verified, a content this device posted to this chain. */
  addEventListener(type: 'kept', listener: (event: CustomEvent<ContentKept>) => void, options?: boolean | AddEventListenerOptions): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions): void;
}

/** A member of a group. */
export interface GroupMember {
  readonly did: string;
  readonly role: 'admin' | 'member';
  readonly devices: string[];
}

/**
 * A group DID controlled by its admins (persons), read and written by its members:
 * `endra.createGroup`, `endra.joinGroup`, `endra.openGroup` (not constructible). No device
 * methods: those are a person's. A member's devices are its person's own: every replica
 * checks a join and a device list against the person's chain (`NOT_THE_PERSONS`), and this
 * handle keeps the members' person chains synced and brings their devices up to date when
 * they change, so a device a person removes loses the person's groups.
 */
export class Group extends Controlled {
  /** A one-time invitation for a person (`endra.joinGroup` on it). */
  invite(options?: { role?: 'admin' | 'member'; expiresIn?: number }): Promise<IdentityInvitation>;
  members(): Promise<GroupMember[]>;
  /** Removes a member; acknowledges the group's open bound chains first, as `removeDevice`. */
  remove(did: string): Promise<void>;
  leave(): Promise<void>;
}

/** What {@link Endra.parseInvitation} reads from an invitation. */
export type Invitation =
  | {
      /** A chain's invitation (`chain.invite()`, `endra:…`): where to find it. */
      readonly kind: 'chain';
      readonly chain: string;
      readonly relays: string[];
      /** The inviting peer. */
      readonly peer?: string;
    }
  | {
      /** An identity's or group's one-time invitation (`endra-invite:…` or its link). */
      readonly kind: 'identity';
      /** The identity chain. */
      readonly chain: string;
      readonly relays: string[];
      /** Expiry, ms since the epoch. */
      readonly expires: number;
      readonly role: 'admin' | 'member';
      /** The code itself (taken out of a link). */
      readonly code: string;
    };

export interface StartOptions {
  /**
   * Where the data lives: a {@link Store} (`Store.indexedDb(name)`, `Store.memory()`) or the
   * name of an IndexedDB store. Default `'endra'`.
   */
  store?: Store | string;
  /**
   * Relays to use (multiaddrs ending in `/p2p/<id>`). Give a relay's WebRTC-Direct and
   * WebSocket addresses together: the first to connect wins. A relay is only ever dialled at
   * the addresses given here or to `node.useRelay`. Known issue: a browser's uploads over
   * WebRTC-Direct can stall (a stream of 80 small blocks, one every 25 ms, reached the relay
   * 3); WebSocket does not. Prefer the WebSocket address for now.
   */
  relays?: string[];
  /**
   * `false`: no node. Chains stay local (`node` is `null`); invitations, joins and identities
   * reject with `NOT_CONNECTED`. Default `true`.
   */
  network?: boolean;
  /**
   * The most sealed bytes of offchain content the node keeps in the store, counted as whole
   * 64 KiB segments. Default 4 GiB. A content that does not fit beside what is kept and
   * being fetched is not fetched (reading it rejects with `CONTENT_QUOTA_EXCEEDED`; it is
   * fetched once erasures make room), nor kept when it comes with its message. This
   * device's own posts are not refused, but they count.
   */
  maxStoredContentBytes?: number;
  /**
   * The content limit every bound chain handle of this context starts with (see
   * {@link BoundChain.maxContentBytes}; `openChain(id, { maxContentBytes })` overrides it for
   * one handle). Default and most: 100 MiB. Out of range: `INVALID_ARGUMENT`.
   */
  maxContentBytes?: number;
}

/**
 * The way into Endra: one store, the node that syncs it, and every chain and identity made or
 * opened through them. `await using endra = await Endra.start({ store: 'app', relays })`
 * stops it at the end of the block.
 */
export class Endra {
  /** Opens the store and starts the node (which starts dialling `relays`). */
  static start(options?: StartOptions): Promise<Endra>;
  /** The store everything of this context is kept in. */
  readonly store: Store;
  /** The node syncing the store; `null` when started with `network: false`. */
  readonly node: Node | null;

  /** Creates a chain whose genesis block this device signs; the node syncs it. */
  createChain(options?: { topics?: string[]; body?: Uint8Array }): Promise<Chain>;
  /** Opens a chain the store holds (`NOT_FOUND` otherwise); the node syncs it. */
  openChain(id: string): Promise<Chain>;
  /**
   * Joins a chain another device invited this one to (`chain.invite()`): dials the
   * invitation's relays and resolves once the chain's genesis block is stored here (blocks
   * keep arriving after). `INVITATION_INVALID` for anything but a chain invitation.
   */
  joinChain(invitation: string, options?: { signal?: AbortSignal }): Promise<Chain>;
  /** Starts a replica of another store's chain from its genesis block's `bytes`. */
  chainFromGenesis(genesis: Uint8Array): Promise<Chain>;
  /** Reads any invitation the package makes (`INVITATION_INVALID` otherwise). */
  parseInvitation(text: string): Invitation;

  /**
   * Creates a person identity whose first device is this one. The result's `recoveryKey`
   * is the person's recovery code: show it to the user once.
   */
  createIdentity(options: PassphraseOptions & { name?: string; relays?: string[] }): Promise<Identity>;
  /** Opens a person identity whose chain the store holds (its messages fetched if missing). */
  openIdentity(did: string, options: PassphraseOptions & { signal?: AbortSignal }): Promise<Identity>;
  /** Joins as a new device of a person (`identity.inviteDevice()`); resolves once approved. */
  joinAsDevice(code: string, options: PassphraseOptions & { signal?: AbortSignal }): Promise<Identity>;
  /**
   * Takes back a person with its recovery code on this device: every other device is
   * removed, this one becomes its device, and the result's `recoveryKey` is the next code
   * (the one used is spent). Rejects with `RECOVERY_KEY_INVALID` (mistyped), `REVOKED`
   * (spent), `UNAUTHORISED` (another person's), `NOT_FOUND` (no peer served the identity).
   */
  recoverIdentity(
    did: string,
    options: PassphraseOptions & { recoveryKey: string; signal?: AbortSignal; timeout?: number },
  ): Promise<Identity>;
  /**
   * The DID document of any `did:endra:` DID, fetching its chain through the node's relays
   * when the store does not hold it (no invitation or keys needed). Rejects with `NOT_FOUND`
   * when no peer served it within `timeout` ms (default 30,000).
   */
  resolve(did: string, options?: { signal?: AbortSignal; timeout?: number }): Promise<DidDocument>;
  /** Creates a group founded by `person`. */
  createGroup(options: PassphraseOptions & { person: Identity; name?: string; relays?: string[] }): Promise<Group>;
  /** Opens a group whose chain the store holds (its messages fetched if missing). */
  openGroup(did: string, options: PassphraseOptions & { signal?: AbortSignal }): Promise<Group>;
  /** Joins a group with an invitation code as `person`; resolves once an admin approved. */
  joinGroup(code: string, options: PassphraseOptions & { person: Identity; signal?: AbortSignal }): Promise<Group>;

  /**
   * Stops the node: closes its connections and stops syncing. Later calls that need it
   * (writes through the chains it syncs included) reject with `NETWORK_STOPPED`; the store
   * stays usable. Calling it again returns the same promise.
   */
  stop(): Promise<void>;
  /** `await using endra = await Endra.start(…)` stops it at the end of the block. */
  [Symbol.asyncDispose](): Promise<void>;
}
