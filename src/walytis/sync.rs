//! Sync of one chain between peers, without I/O: the network shell feeds [`Input`]s to
//! [`Sync::handle`] and carries out the [`Output`]s it returns; time is an argument.
//!
//! - **Push**: a block made here is published whole the moment it exists ([`Message::Push`]).
//! - **Heads**: on every new connection and as periodic anti-entropy, peers exchange their
//!   leaves ([`Message::Heads`]); unknown leaves are requested.
//! - **Fetch**: a [`Message::Want`] names missing blocks and the requester's leaves; the answer
//!   ([`Message::Blocks`]) carries the wanted blocks and their ancestors the requester probably
//!   lacks, ancestors first, in bounded batches. Blocks that still miss parents make the
//!   requester ask for those parents, so a late joiner walks back a whole chain in a few
//!   round trips and a lost message only delays a block until the next heads exchange.
//! - **Bounds**: wanted IDs in flight, batch sizes, requests and bytes served per second per
//!   peer are bounded; a peer that sends invalid blocks is reported for disconnection.
//!   Orphans (blocks waiting for parents) are bounded in bytes per peer and per chain and
//!   dropped after [`ORPHAN_TIMEOUT_MS`]; a peer whose own answers leave orphans that never
//!   resolve is struck. Orphans that came by gossip strike nobody: the gossip source may only
//!   have forwarded them (a relay forwards what it has not judged).

use std::collections::{HashMap, HashSet};

use ed25519_dalek::SigningKey;

use super::block::{Block, Position, MAX_BLOCK_BYTES};
use super::chain::{Chain, ChainError, Entry, InsertReport, Judgement, Query};
use super::id::{BlockId, IdError};
use super::store::BlockStore;
use crate::cbor::{CborError, Reader, Writer};

/// Most blocks in one [`Message::Blocks`].
pub const MAX_BATCH_BLOCKS: usize = 512;
/// Most bytes of blocks in one [`Message::Blocks`] (a block may exceed it alone).
pub const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Most IDs in one [`Message::Want`] or [`Message::Heads`].
pub const MAX_IDS: usize = 1024;
/// Most [`Message::Want`]s served per peer per second.
pub const WANTS_PER_SECOND: u32 = 50;
/// Invalid blocks tolerated from one peer before asking to disconnect it.
pub const MAX_STRIKES: u32 = 3;
/// Most blocks visited when walking a wanted block's ancestry.
pub const WALK_LIMIT: usize = 4 * MAX_BATCH_BLOCKS;
/// A wanted block not received after this many milliseconds may be asked for again.
pub const WANT_TIMEOUT_MS: u64 = 5_000;
/// Most bytes of blocks served to one peer per second in answers to its [`Message::Want`]s
/// (a batch is cut short to stay within it).
pub const SERVED_BYTES_PER_SECOND: usize = 8 << 20;
/// Most bytes of orphans (blocks waiting for parents) held for one peer; beyond, its oldest
/// are dropped.
pub const MAX_ORPHAN_BYTES_PER_PEER: usize = 4 << 20;
/// Most bytes of orphans held for all peers of a chain; beyond, the oldest of the peer with
/// the most are dropped, so a flood from many peers cannot crowd out one honest peer's.
pub const MAX_ORPHAN_BYTES: usize = 16 << 20;
/// An orphan whose parents did not arrive within this many milliseconds is dropped (an
/// honest sender answers for them in a round trip; sync fetches a dropped block again if a
/// peer lists it).
pub const ORPHAN_TIMEOUT_MS: u64 = 60_000;
/// Most blocks [`Sync::take_recent`] hands over at once.
pub const RECENT_BLOCKS: usize = 32;

/// Largest encoded sync message: a full batch and its framing.
pub const MAX_MESSAGE_BYTES: usize = MAX_BATCH_BYTES + MAX_BLOCK_BYTES + 64 * 1024;

/// Why bytes from a peer are not a sync message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// Larger than [`MAX_MESSAGE_BYTES`].
    #[error("sync message of {size} bytes, the limit is {MAX_MESSAGE_BYTES}")]
    TooLarge {
        /// Its size.
        size: usize,
    },
    /// Not the canonical CBOR of a message.
    #[error("malformed sync message: {0}")]
    Malformed(#[from] CborError),
    /// A block ID in the message is not one.
    #[error("malformed sync message: {0}")]
    InvalidId(#[from] IdError),
    /// A message kind this version does not know.
    #[error("unknown sync message kind {0}")]
    UnknownKind(u64),
    /// More items than the protocol allows.
    #[error("{count} items in a sync message, the limit is {limit}")]
    TooManyItems {
        /// Items found.
        count: usize,
        /// The limit.
        limit: usize,
    },
}

/// An opaque peer handle chosen by the network shell (a libp2p `PeerId` index, a test id).
pub type Peer = u64;

/// What peers say to each other about one chain.
///
/// On the wire ([`Message::encode`]) a message is a canonical CBOR array whose first item is
/// its kind: `[0, block]`, `[1, [leaf…], answer]`, `[2, [id…], [known…]]`, `[3, [block…]]`,
/// IDs as 36-byte CID byte strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A new block, pushed to every peer the moment it is made.
    Push {
        /// The block's canonical bytes.
        block: Vec<u8>,
    },
    /// The sender's current leaves.
    Heads {
        /// Leaf IDs.
        leaves: Vec<BlockId>,
        /// Whether the receiver should answer with its own heads if it has leaves the
        /// sender did not list. Answers never ask again, so heads never ping-pong.
        answer: bool,
    },
    /// A request for blocks the sender lacks.
    Want {
        /// The missing blocks.
        ids: Vec<BlockId>,
        /// The sender's leaves: the responder need not send their ancestors.
        known: Vec<BlockId>,
    },
    /// Blocks answering a [`Message::Want`], ancestors first.
    Blocks {
        /// Canonical bytes of each block.
        blocks: Vec<Vec<u8>>,
    },
}

const PUSH: u64 = 0;
const HEADS: u64 = 1;
const WANT: u64 = 2;
const BLOCKS: u64 = 3;

impl Message {
    /// The canonical wire form.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(64);
        let ids = |w: &mut Writer, ids: &[BlockId]| {
            w.array(ids.len());
            for id in ids {
                w.bytes(id.as_bytes());
            }
        };
        match self {
            Message::Push { block } => {
                w.array(2);
                w.uint(PUSH);
                w.bytes(block);
            }
            Message::Heads { leaves, answer } => {
                w.array(3);
                w.uint(HEADS);
                ids(&mut w, leaves);
                w.bool(*answer);
            }
            Message::Want { ids: wanted, known } => {
                w.array(3);
                w.uint(WANT);
                ids(&mut w, wanted);
                ids(&mut w, known);
            }
            Message::Blocks { blocks } => {
                w.array(2);
                w.uint(BLOCKS);
                w.array(blocks.len());
                for block in blocks {
                    w.bytes(block);
                }
            }
        }
        w.out
    }

    /// Parses a message from a peer; anything but the canonical form of a known message is
    /// an error. Blocks inside are checked later, by the chain.
    pub fn decode(bytes: &[u8]) -> Result<Message, WireError> {
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(WireError::TooLarge { size: bytes.len() });
        }
        let mut r = Reader::new(bytes);
        let len = r.array()?;
        let kind = r.uint()?;
        let expected = match kind {
            PUSH | BLOCKS => 2,
            HEADS | WANT => 3,
            other => return Err(WireError::UnknownKind(other)),
        };
        if len != expected {
            return Err(WireError::Malformed(CborError::UnexpectedType {
                at: 0,
                expected: "message of the right length",
            }));
        }
        let ids = |r: &mut Reader<'_>| -> Result<Vec<BlockId>, WireError> {
            let count = r.array()?;
            if count > MAX_IDS {
                return Err(WireError::TooManyItems {
                    count,
                    limit: MAX_IDS,
                });
            }
            (0..count)
                .map(|_| {
                    let bytes = r.bytes()?;
                    Ok(BlockId::from_bytes(bytes)?)
                })
                .collect()
        };
        let message = match kind {
            PUSH => Message::Push {
                block: r.bytes()?.to_vec(),
            },
            HEADS => Message::Heads {
                leaves: ids(&mut r)?,
                answer: r.bool()?,
            },
            WANT => Message::Want {
                ids: ids(&mut r)?,
                known: ids(&mut r)?,
            },
            _ => {
                let count = r.array()?;
                if count > MAX_BATCH_BLOCKS {
                    return Err(WireError::TooManyItems {
                        count,
                        limit: MAX_BATCH_BLOCKS,
                    });
                }
                let blocks = (0..count)
                    .map(|_| r.bytes().map(<[u8]>::to_vec))
                    .collect::<Result<_, _>>()?;
                Message::Blocks { blocks }
            }
        };
        r.finish()?;
        Ok(message)
    }
}

/// An event for the sync core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A connection to a peer of this chain opened.
    Connected(Peer),
    /// The connection closed.
    Disconnected(Peer),
    /// A message arrived.
    Received(Peer, Message),
    /// Periodic timer: anti-entropy and retries. The shell calls it with some jitter.
    Tick,
}

/// Something the shell must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send a message to one peer.
    Send(Peer, Message),
    /// Publish a message to every peer of the chain (gossip).
    Publish(Message),
    /// This peer misbehaved (invalid blocks, floods): close its connection.
    Disconnect(Peer),
    /// A block from this peer was refused, and why (for the shell's log): it is invalid,
    /// or the chain's admission rule refused it.
    Refused(Peer, BlockId, String),
    /// A block is held until this other chain grows (see
    /// [`ChainError::AwaitingAuthority`]): the shell syncs that chain, so that it does.
    Awaiting(BlockId),
}

#[derive(Debug, Default)]
struct PeerState {
    strikes: u32,
    window_start: u64,
    wants_in_window: u32,
    served_in_window: usize,
}

/// A block a peer sent that waits in the chain's pending set for its parents.
#[derive(Debug)]
struct Orphan {
    peer: Peer,
    bytes: usize,
    since: u64,
    /// It came in the peer's own answer (a [`Message::Blocks`]), not by gossip the peer
    /// may only have forwarded: if it never resolves, the peer is struck.
    answered: bool,
}

/// The sync state of one chain on one node.
#[derive(Debug)]
pub struct Sync<S: BlockStore> {
    chain: Chain<S>,
    peers: HashMap<Peer, PeerState>,
    /// Wanted block → when it was last asked for.
    wanted: HashMap<BlockId, u64>,
    /// Blocks accepted from peers since [`Sync::take_recent`]; `None` once more than
    /// [`RECENT_BLOCKS`] were (a catch-up: readers page through the store instead).
    recent: Option<Vec<Entry>>,
    /// Whether a peer's heads were heard: before that, an empty `wanted` means nothing.
    heard_heads: bool,
    /// The chain's pending blocks that peers sent, with who sent them.
    orphans: HashMap<BlockId, Orphan>,
}

impl<S: BlockStore> Sync<S> {
    /// Syncs `chain`.
    pub fn new(chain: Chain<S>) -> Self {
        Sync {
            chain,
            peers: HashMap::new(),
            wanted: HashMap::new(),
            recent: Some(Vec::new()),
            heard_heads: false,
            orphans: HashMap::new(),
        }
    }

    /// Whether this replica has caught up: it heard a peer's heads and holds every block they
    /// named and every ancestor of those (nothing asked for is outstanding, nothing waits for
    /// a parent). A new replica is not synced until a peer answered.
    pub fn is_synced(&self) -> bool {
        self.heard_heads && self.wanted.is_empty() && !self.chain.has_pending()
    }

    /// The blocks accepted from peers since the last call, in arrival order, if there were
    /// at most [`RECENT_BLOCKS`]: what a node hands its app with the change, so that a live
    /// message reaches the screen without a store read.
    pub fn take_recent(&mut self) -> Option<Vec<Entry>> {
        self.recent.replace(Vec::new())
    }

    /// The chain being synced.
    pub fn chain(&self) -> &Chain<S> {
        &self.chain
    }

    /// Signs blocks on the current leaves and returns the pushes that announce them; store
    /// them with [`Sync::store_signed`]. Routing the pushes before storing takes the store's
    /// write off the path of a message to its readers: if storing fails, the blocks may be
    /// out already, and come back to this replica by sync like any peer's.
    pub async fn sign(
        &mut self,
        key: &SigningKey,
        time: u64,
        items: &[(Vec<u8>, Vec<String>)],
    ) -> Result<(Vec<Block>, Vec<Output>), ChainError> {
        let blocks = self.chain.sign(key, time, items).await?;
        let outputs = blocks
            .iter()
            .map(|block| {
                Output::Publish(Message::Push {
                    block: block.bytes().to_vec(),
                })
            })
            .collect();
        Ok((blocks, outputs))
    }

    /// Whether this replica holds the block (stored, or held waiting for its parents).
    pub async fn holds(&mut self, block: &[u8]) -> Result<bool, ChainError> {
        self.chain.holds_block(block).await
    }

    /// Judges a pushed block before it is stored (see [`Chain::judge`]): whether a gossip
    /// hop should pass it on.
    pub async fn judge(&mut self, block: &[u8]) -> Result<Judgement, ChainError> {
        self.chain.judge(block).await
    }

    /// Stores blocks from [`Sync::sign`].
    pub async fn store_signed(&mut self, blocks: Vec<Block>) -> Result<Vec<Entry>, ChainError> {
        self.chain.store_signed(blocks).await
    }

    /// Announces blocks another handle on the same store appended (an identity's ops, say):
    /// re-reads the chain state and pushes the blocks to peers, one [`Message::Push`] per
    /// block in the order given.
    pub async fn published(&mut self, blocks: Vec<Vec<u8>>) -> Result<Vec<Output>, ChainError> {
        self.chain.refresh().await?;
        if self.chain.has_admission_rule() {
            // Blocks of this replica's own store: verified when they were stored.
            let decoded: Vec<Block> = blocks
                .iter()
                .filter_map(|b| Block::decode_stored(b).ok())
                .collect();
            self.chain.follow(&decoded);
        }
        Ok(blocks
            .into_iter()
            .map(|block| Output::Publish(Message::Push { block }))
            .collect())
    }

    /// Handles one event at time `now` (milliseconds). Errors are local failures (the store);
    /// anything a peer sends wrong is answered with outputs, never with an error.
    pub async fn handle(&mut self, now: u64, input: Input) -> Result<Vec<Output>, ChainError> {
        let mut out = Vec::new();
        match input {
            Input::Connected(peer) => {
                self.peers.entry(peer).or_default();
                out.push(Output::Send(peer, self.heads(true)));
            }
            Input::Disconnected(peer) => {
                self.peers.remove(&peer);
                // With no peer left, whatever they had and this replica lacks is unknown:
                // not synced until a peer's heads are heard again.
                if self.peers.is_empty() {
                    self.heard_heads = false;
                }
            }
            Input::Tick => {
                self.wanted
                    .retain(|_, asked| now.saturating_sub(*asked) < WANT_TIMEOUT_MS);
                self.expire_orphans(now, &mut out);
                if !self.peers.is_empty() {
                    out.push(Output::Publish(self.heads(true)));
                }
                // Parents whose request or answer was lost: ask every peer again.
                let missing = self.chain.missing_parents();
                let peers: Vec<Peer> = self.peers.keys().copied().collect();
                self.want(now, &peers, missing, &mut out);
            }
            Input::Received(peer, message) => {
                self.peers.entry(peer).or_default();
                self.receive(now, peer, message, &mut out).await?;
            }
        }
        Ok(out)
    }

    fn heads(&self, answer: bool) -> Message {
        Message::Heads {
            leaves: self.chain.leaves().iter().take(MAX_IDS).copied().collect(),
            answer,
        }
    }

    async fn receive(
        &mut self,
        now: u64,
        peer: Peer,
        message: Message,
        out: &mut Vec<Output>,
    ) -> Result<(), ChainError> {
        match message {
            Message::Push { block } => {
                let report = self.chain.insert([block]).await?;
                self.after_insert(now, Some((peer, false)), report, out);
            }
            Message::Blocks { blocks } => {
                if blocks.len() > MAX_BATCH_BLOCKS {
                    self.strike(peer, MAX_STRIKES, out);
                    return Ok(());
                }
                let report = self.chain.insert(blocks).await?;
                let progressed = !report.accepted.is_empty();
                self.after_insert(now, Some((peer, true)), report, out);
                if progressed {
                    // A batch stops short of what was wanted on long histories: ask on.
                    let asked: Vec<BlockId> = self.wanted.drain().map(|(id, _)| id).collect();
                    let mut still = Vec::new();
                    for id in asked {
                        if !self.chain.contains(&id).await? {
                            still.push(id);
                        }
                    }
                    self.want(now, &[peer], still, out);
                }
            }
            Message::Heads { leaves, answer } => {
                if leaves.len() > MAX_IDS {
                    self.strike(peer, MAX_STRIKES, out);
                    return Ok(());
                }
                self.heard_heads = true;
                let theirs: HashSet<BlockId> = leaves.iter().copied().collect();
                let mut unknown = Vec::new();
                for id in leaves {
                    if !self.chain.contains(&id).await? {
                        unknown.push(id);
                    }
                }
                self.want(now, &[peer], unknown, out);
                // The peer may lack leaves of ours it did not list: tell it, so it asks.
                let ours_unlisted = self.chain.leaves().iter().any(|l| !theirs.contains(l));
                if answer && ours_unlisted && self.allow(now, peer) {
                    out.push(Output::Send(peer, self.heads(false)));
                }
            }
            Message::Want { ids, known } => {
                if ids.len() > MAX_IDS || known.len() > MAX_IDS {
                    self.strike(peer, MAX_STRIKES, out);
                    return Ok(());
                }
                if !self.allow(now, peer) {
                    return Ok(());
                }
                let budget = self.peers.get(&peer).map_or(0, |state| {
                    SERVED_BYTES_PER_SECOND.saturating_sub(state.served_in_window)
                });
                if budget == 0 {
                    return Ok(());
                }
                let blocks = self.ancestry(&ids, &known, budget).await?;
                let served: usize = blocks.iter().map(Vec::len).sum();
                if let Some(state) = self.peers.get_mut(&peer) {
                    state.served_in_window += served;
                }
                if !blocks.is_empty() {
                    out.push(Output::Send(peer, Message::Blocks { blocks }));
                }
            }
        }
        Ok(())
    }

    /// Counts a [`Message::Want`] (or an answered heads) against the peer's rate.
    fn allow(&mut self, now: u64, peer: Peer) -> bool {
        let state = self.peers.entry(peer).or_default();
        if now.saturating_sub(state.window_start) >= 1000 {
            state.window_start = now;
            state.wants_in_window = 0;
            state.served_in_window = 0;
        }
        state.wants_in_window += 1;
        state.wants_in_window <= WANTS_PER_SECOND
    }

    /// Counts misbehaviour against a connected peer (a disconnected one is gone already).
    fn strike(&mut self, peer: Peer, weight: u32, out: &mut Vec<Output>) {
        let Some(state) = self.peers.get_mut(&peer) else {
            return;
        };
        state.strikes = state.strikes.saturating_add(weight);
        if state.strikes >= MAX_STRIKES && !out.contains(&Output::Disconnect(peer)) {
            out.push(Output::Disconnect(peer));
        }
    }

    /// Judges again the blocks of this bound chain held for its authority (see
    /// [`ChainError::AwaitingAuthority`]): the shell calls it when the authority chain grew.
    pub async fn authority_grew(&mut self, now: u64) -> Result<Vec<Output>, ChainError> {
        let mut out = Vec::new();
        if self.chain.has_awaiting() {
            let report = self.chain.retry_awaiting().await?;
            self.after_insert(now, None, report, &mut out);
        }
        Ok(out)
    }

    /// Follows up an insert of blocks from `sender`: the peer, and whether the blocks were
    /// its own answer rather than gossip; `None`: blocks held here, whose sender is
    /// not known any more.
    fn after_insert(
        &mut self,
        now: u64,
        sender: Option<(Peer, bool)>,
        report: InsertReport,
        out: &mut Vec<Output>,
    ) {
        let peer = sender.map(|(peer, _)| peer);
        for entry in &report.accepted {
            self.wanted.remove(&entry.block.id());
            self.orphans.remove(&entry.block.id());
        }
        if let Some((peer, answered)) = sender {
            for (id, _) in &report.waiting {
                if let Some(bytes) = self.chain.pending_size(id) {
                    let orphan = Orphan {
                        peer,
                        bytes,
                        since: now,
                        answered,
                    };
                    self.orphans.insert(*id, orphan);
                }
            }
            self.bound_orphans(out);
        }
        self.recent = self.recent.take().and_then(|mut recent| {
            (recent.len() + report.accepted.len() <= RECENT_BLOCKS).then(|| {
                recent.extend(report.accepted.iter().cloned());
                recent
            })
        });
        let mut invalid = 0;
        for (id, e) in &report.rejected {
            // An honest peer never holds a block the chain's rule refuses: every replica
            // applies the same rule to the same ancestry.
            match e {
                ChainError::InvalidBlock(_) | ChainError::NotAdmitted(_) => {
                    invalid += 1;
                    if let Some(peer) = peer {
                        out.push(Output::Refused(peer, *id, e.to_string()));
                    }
                }
                // Not decidable before the authority chain catches up: asked for again at
                // the next heads exchange, or as the missing parent of a child.
                ChainError::AwaitingAuthority { authority, .. } => {
                    self.wanted.remove(id);
                    if !out.contains(&Output::Awaiting(*authority)) {
                        out.push(Output::Awaiting(*authority));
                    }
                }
                _ => {}
            }
        }
        if let Some(peer) = peer.filter(|_| invalid > 0) {
            self.strike(peer, invalid, out);
        }
        let missing: Vec<BlockId> = report
            .waiting
            .into_iter()
            .flat_map(|(_, missing)| missing)
            .collect();
        let peers: Vec<Peer> = match peer {
            Some(peer) => vec![peer],
            None => self.peers.keys().copied().collect(),
        };
        self.want(now, &peers, missing, out);
    }

    /// Keeps the orphans within [`MAX_ORPHAN_BYTES_PER_PEER`] for each peer and
    /// [`MAX_ORPHAN_BYTES`] in all, dropping the oldest of the peer over its share (struck
    /// if they were its own answers) or, over the total, of the peer holding the most.
    fn bound_orphans(&mut self, out: &mut Vec<Output>) {
        let mut by_peer: HashMap<Peer, usize> = HashMap::new();
        for orphan in self.orphans.values() {
            *by_peer.entry(orphan.peer).or_default() += orphan.bytes;
        }
        let mut total: usize = by_peer.values().sum();
        let mut struck = HashSet::new();
        loop {
            let heaviest = by_peer.iter().max_by_key(|(peer, bytes)| (**bytes, **peer));
            let Some((&peer, &bytes)) = heaviest else {
                return;
            };
            let over_share = bytes > MAX_ORPHAN_BYTES_PER_PEER;
            if !over_share && total <= MAX_ORPHAN_BYTES {
                return;
            }
            let oldest = self
                .orphans
                .iter()
                .filter(|(_, orphan)| orphan.peer == peer)
                .min_by_key(|(id, orphan)| (orphan.since, **id))
                .map(|(id, _)| *id);
            let Some(id) = oldest else {
                return;
            };
            if let Some(orphan) = self.orphans.remove(&id) {
                self.chain.drop_pending(&id);
                total -= orphan.bytes;
                if let Some(held) = by_peer.get_mut(&peer) {
                    *held -= orphan.bytes;
                }
                if over_share && orphan.answered && struck.insert(peer) {
                    self.strike(peer, 1, out);
                }
            }
        }
    }

    /// Forgets orphans the chain accepted or dropped meanwhile and drops those older than
    /// [`ORPHAN_TIMEOUT_MS`], striking (once per round) each peer whose own answer they were.
    fn expire_orphans(&mut self, now: u64, out: &mut Vec<Output>) {
        let chain = &self.chain;
        self.orphans
            .retain(|id, _| chain.pending_size(id).is_some());
        let expired: Vec<BlockId> = self
            .orphans
            .iter()
            .filter(|(_, orphan)| now.saturating_sub(orphan.since) >= ORPHAN_TIMEOUT_MS)
            .map(|(id, _)| *id)
            .collect();
        let mut struck = HashSet::new();
        for id in expired {
            if let Some(orphan) = self.orphans.remove(&id) {
                self.chain.drop_pending(&id);
                if orphan.answered && struck.insert(orphan.peer) {
                    self.strike(orphan.peer, 1, out);
                }
            }
        }
    }

    /// Asks `peers` for blocks not already asked for recently.
    fn want(&mut self, now: u64, peers: &[Peer], ids: Vec<BlockId>, out: &mut Vec<Output>) {
        let mut fresh = Vec::new();
        let mut seen = HashSet::new();
        for id in ids {
            let recently = self
                .wanted
                .get(&id)
                .is_some_and(|asked| now.saturating_sub(*asked) < WANT_TIMEOUT_MS);
            if !recently && seen.insert(id) && fresh.len() < MAX_IDS {
                fresh.push(id);
            }
        }
        if fresh.is_empty() {
            return;
        }
        for id in &fresh {
            self.wanted.insert(*id, now);
        }
        let known: Vec<BlockId> = self.chain.leaves().iter().take(MAX_IDS).copied().collect();
        for peer in peers {
            let want = Message::Want {
                ids: fresh.clone(),
                known: known.clone(),
            };
            out.push(Output::Send(*peer, want));
        }
    }

    /// The wanted blocks and their ancestors the requester probably lacks, oldest first.
    ///
    /// Walks parents from the wanted blocks, not past the requester's known leaves nor below
    /// the height of the lowest of them, and sends the lowest [`MAX_BATCH_BLOCKS`] found, so
    /// the requester can accept them at once. A history too long to walk (a late joiner) is
    /// sent in chain order from that height instead. Whatever a batch leaves out, the
    /// requester asks for again.
    async fn ancestry(
        &mut self,
        ids: &[BlockId],
        known: &[BlockId],
        max_bytes: usize,
    ) -> Result<Vec<Vec<u8>>, ChainError> {
        let known: HashSet<BlockId> = known.iter().copied().collect();
        let mut floor: Option<Position> = None;
        for id in &known {
            if let Some(entry) = self.chain.block(id).await? {
                let position = entry.block.position();
                floor = Some(floor.map_or(position, |f| f.min(position)));
            }
        }
        let mut found: Vec<Entry> = Vec::new();
        let mut visited: HashSet<BlockId> = HashSet::new();
        let mut frontier: Vec<BlockId> = ids.iter().take(MAX_IDS).copied().collect();
        let floor_height = floor.map_or(0, |f| f.height);
        while let Some(id) = frontier.pop() {
            if visited.len() >= WALK_LIMIT {
                // Too long to walk: send the chain in order from the requester's floor.
                let query = Query {
                    after: floor.map(|f| Position {
                        height: f.height,
                        id: BlockId::MIN,
                    }),
                    limit: MAX_BATCH_BLOCKS,
                    ..Query::default()
                };
                found = self.chain.blocks(query).await?;
                break;
            }
            if known.contains(&id) || !visited.insert(id) {
                continue;
            }
            let Some(entry) = self.chain.block(&id).await? else {
                continue;
            };
            if entry.block.height() > floor_height {
                frontier.extend(entry.block.parents().iter().copied());
            }
            found.push(entry);
        }
        found.sort_by_key(|e| e.block.position());
        let mut bytes = 0;
        let mut batch = Vec::new();
        for entry in found.into_iter().take(MAX_BATCH_BLOCKS) {
            bytes += entry.block.bytes().len();
            if bytes > MAX_BATCH_BYTES.min(max_bytes) && !batch.is_empty() {
                break;
            }
            batch.push(entry.block.bytes().to_vec());
        }
        Ok(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_garbage_is_a_typed_error() {
        let a = BlockId::of(b"a");
        let b = BlockId::of(b"b");
        for message in [
            Message::Push {
                block: vec![1, 2, 3],
            },
            Message::Heads {
                leaves: vec![a, b],
                answer: true,
            },
            Message::Want {
                ids: vec![a],
                known: vec![b],
            },
            Message::Blocks {
                blocks: vec![vec![9; 70], vec![]],
            },
        ] {
            assert_eq!(Message::decode(&message.encode()), Ok(message));
        }
        assert_eq!(
            Message::decode(&[0x82, 0x09, 0x40]),
            Err(WireError::UnknownKind(9))
        );
        let mut trailing = Message::Push { block: vec![] }.encode();
        trailing.push(0);
        assert_eq!(
            Message::decode(&trailing),
            Err(WireError::Malformed(CborError::TrailingBytes { extra: 1 }))
        );
        assert!(matches!(
            Message::decode(&[0xff]),
            Err(WireError::Malformed(_))
        ));
        let huge = vec![0; MAX_MESSAGE_BYTES + 1];
        assert_eq!(
            Message::decode(&huge),
            Err(WireError::TooLarge {
                size: MAX_MESSAGE_BYTES + 1
            })
        );
    }
}
