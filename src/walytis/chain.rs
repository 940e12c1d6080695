//! A chain: the DAG of one group's blocks, kept in a [`BlockStore`].
//!
//! The chain accepts a block once all its parents are stored and its height matches them;
//! until then the block waits in a bounded pending set and is accepted the moment its last
//! missing parent is. Every accepted block gets the next *sequence number* of this replica;
//! because parents are always accepted first, reading blocks by sequence number delivers
//! parents before children, each block exactly once, and a reader can resume from the last
//! number it saw after a restart (see [`Chain::since`]).

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet};

use ed25519_dalek::SigningKey;
use futures_channel::mpsc;

use super::admission::{Admission, Guard, ReferenceView};
use super::binding::{self, Anchored, AuthorityView, Binding, BoundRefusal, Stamp};
use super::block::{Author, Block, BlockDraft, BlockError, Position, MAX_PARENTS};
use super::id::BlockId;
use super::rules::{Claim, Refused, RuleRefusal, Rules, RulesError};
use super::store::{
    BlockRecord, BlockStore, ChainState, Commit, Index, Scan, StoreError, StoredBlock,
};

/// Most blocks that may wait for missing parents at once.
pub const MAX_PENDING: usize = 4096;
/// Most bytes of blocks that may wait for missing parents at once (the sync layer keeps
/// each peer's share well below it, see [`super::sync::MAX_ORPHAN_BYTES_PER_PEER`]).
pub const MAX_PENDING_BYTES: usize = 32 << 20;
/// How often a write is retried after another writer changed the chain under it.
const CONFLICT_RETRIES: usize = 16;
/// Heights remembered to check new blocks against their parents without a store lookup.
const HEIGHT_CACHE: usize = 1 << 17;
/// Views of other chains kept for the checks that reference them (see
/// [`Admission::reference`]).
const REFERENCE_VIEWS: usize = 16;
/// Block IDs remembered as signature-checked by one chain handle (see [`Chain::read`]).
const VERIFIED_CACHE: usize = 1 << 17;
/// Blocks the admission rule refused, remembered so that they and their descendants are
/// refused again without another check.
const REFUSED_CACHE: usize = 4096;
/// Most blocks of a bound chain held while their authority catches up (see
/// [`ChainError::AwaitingAuthority`]); beyond it they are dropped and fetched again by sync.
pub const MAX_AWAITING: usize = 1024;

/// What went wrong in a chain operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// The block was rejected.
    #[error("invalid block: {0}")]
    InvalidBlock(#[from] BlockError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store holds no chain with this ID.
    #[error("no chain {0} in this store")]
    UnknownChain(BlockId),
    /// A block offered as a genesis is not one.
    #[error("block {0} is not a genesis block")]
    NotGenesis(BlockId),
    /// The pending set is full; the block was dropped and will be fetched again by sync.
    #[error("the pending set is full ({MAX_PENDING} blocks or {MAX_PENDING_BYTES} bytes wait for their parents)")]
    PendingFull,
    /// The chain's admission rule refused the block (see [`super::Admission`]): for an
    /// identity chain, its author is not a device the block's own history authorises. The
    /// refusal is the rule's own type ([`Refused::downcast_ref`]) with a stable code.
    #[error("not admitted: {0}")]
    NotAdmitted(Refused),
    /// The genesis claims a kind of chain the [`Rules`] this replica was opened with do not
    /// know (see [`super::Rules`]): nothing is stored.
    #[error(transparent)]
    Rules(#[from] RulesError),
    /// The chain is bound to an authority chain (see [`super::binding`]) and this replica
    /// lacks a block of the authority that the block's anchor reaches, so it cannot decide
    /// yet. Nothing is stored; the block is held (up to [`MAX_AWAITING`]) and judged again by
    /// [`Chain::retry_awaiting`] when the authority grows, or offered again by sync.
    #[error("cannot decide yet: block {missing} of authority chain {authority} is not here")]
    AwaitingAuthority {
        /// The authority chain.
        authority: BlockId,
        /// A block of it that this replica lacks.
        missing: BlockId,
    },
}

/// Walytis's own refusals of blocks that a rule would otherwise judge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainRefusal {
    /// An ancestor of the block was refused, so the block is too.
    #[error("it or an ancestor was refused")]
    AncestorRefused,
    /// No view of the bound chain's authority at the block's anchor could be kept.
    #[error("no view of the authority at its anchor")]
    AuthorityUnseen,
}

impl RuleRefusal for ChainRefusal {
    fn code(&self) -> &'static str {
        match self {
            ChainRefusal::AncestorRefused => "ANCESTOR_REFUSED",
            ChainRefusal::AuthorityUnseen => "AUTHORITY_UNSEEN",
        }
    }
}

/// Why the admission checks do not let a block in.
enum Refusal {
    /// Refused for good (so are its descendants).
    Refused(Refused),
    /// Undecidable until the authority chain's `missing` block is stored.
    Awaiting {
        authority: BlockId,
        missing: BlockId,
    },
}

impl From<Refusal> for ChainError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Refused(why) => ChainError::NotAdmitted(why),
            Refusal::Awaiting { authority, missing } => {
                ChainError::AwaitingAuthority { authority, missing }
            }
        }
    }
}

/// What [`Chain::judge`] makes of a block before anything is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judgement {
    /// It would be accepted now, or the chain holds it already.
    Admissible,
    /// Its parents (or its authority chain) are not here yet: it cannot be judged.
    Undecided,
    /// Malformed, of another chain, wrongly signed or refused by the admission rule: every
    /// replica that holds its parents refuses it.
    Refused,
}

/// The outcome of offering blocks to a chain with [`Chain::insert`].
#[derive(Debug, Default)]
pub struct InsertReport {
    /// Blocks accepted by this call, in the order they were accepted (parents first): the
    /// offered blocks and any pending blocks they completed.
    pub accepted: Vec<Entry>,
    /// Offered blocks now waiting for these missing parents.
    pub waiting: Vec<(BlockId, Vec<BlockId>)>,
    /// Offered blocks the chain already had (stored or pending).
    pub duplicates: Vec<BlockId>,
    /// Offered blocks rejected, with the reason. Nothing of them was stored.
    pub rejected: Vec<(BlockId, ChainError)>,
}

/// A block read back from a chain, with its sequence number in this replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Arrival order in this replica: the cursor for [`Chain::since`].
    pub seq: u64,
    /// The block.
    pub block: Block,
}

/// A page request for [`Chain::blocks`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query<'a> {
    /// Only blocks with this topic.
    pub topic: Option<&'a str>,
    /// Only blocks by this author.
    pub author: Option<&'a Author>,
    /// Start after (or, reversed, before) this block.
    pub after: Option<Position>,
    /// Newest first.
    pub reverse: bool,
    /// Most blocks to return.
    pub limit: usize,
}

impl Default for Query<'_> {
    fn default() -> Self {
        Query {
            topic: None,
            author: None,
            after: None,
            reverse: false,
            limit: 100,
        }
    }
}

/// Blocks waiting for missing parents.
#[derive(Debug, Default)]
struct Pending {
    blocks: HashMap<BlockId, Block>,
    /// Missing parent → blocks waiting for it.
    waiting_on: HashMap<BlockId, Vec<BlockId>>,
    /// Bytes of the blocks held.
    bytes: usize,
}

impl Pending {
    fn add(&mut self, block: Block, missing: &[BlockId]) -> Result<(), ChainError> {
        let size = block.bytes().len();
        if self.blocks.len() >= MAX_PENDING || self.bytes + size > MAX_PENDING_BYTES {
            return Err(ChainError::PendingFull);
        }
        for parent in missing {
            self.waiting_on.entry(*parent).or_default().push(block.id());
        }
        self.bytes += size;
        self.blocks.insert(block.id(), block);
        Ok(())
    }

    fn remove(&mut self, id: &BlockId) {
        if let Some(block) = self.blocks.remove(id) {
            self.bytes -= block.bytes().len();
            for parent in block.parents() {
                if let Some(children) = self.waiting_on.get_mut(parent) {
                    children.retain(|child| child != id);
                    if children.is_empty() {
                        self.waiting_on.remove(parent);
                    }
                }
            }
        }
    }
}

/// The result of resolving a batch of blocks against the chain, before it is written.
#[derive(Default)]
struct Plan {
    accepted: Vec<Block>,
    heights: HashMap<BlockId, u64>,
    released: HashSet<BlockId>,
    waiting: Vec<(Block, Vec<BlockId>)>,
    rejected: Vec<(BlockId, ChainError)>,
    /// Blocks the admission rule refused: their descendants are refused with them.
    refused: HashSet<BlockId>,
    /// Blocks undecidable until an authority chain grows, with the chain and the block they
    /// wait for.
    awaiting: Vec<(Block, BlockId, BlockId)>,
}

/// What [`Chain::plan`] plans for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Planning {
    /// An insert: admitted blocks are folded into the rule's view, and pending blocks they
    /// complete are resolved with them.
    Insert,
    /// A judgement ([`Chain::judge`]): nothing is folded in or released.
    Judge,
}

/// The blocks [`Chain::plan`] still has to resolve.
struct Frontier {
    /// Lowest height first, so parents come before children.
    queue: BinaryHeap<Reverse<(u64, BlockId)>>,
    queued: HashMap<BlockId, Block>,
    /// Missing parent → blocks of this batch waiting for it (it may come later in the batch).
    local_waiting: HashMap<BlockId, Vec<BlockId>>,
    waiting: HashMap<BlockId, (Block, Vec<BlockId>)>,
}

impl Frontier {
    fn push(&mut self, block: Block) {
        self.queue.push(Reverse((block.height(), block.id())));
        self.queued.insert(block.id(), block);
    }

    /// Queues the blocks that waited for `id`, in the pending set or in this batch, now that
    /// it is resolved (accepted, or refused with its descendants).
    fn release_children(
        &mut self,
        id: &BlockId,
        pending: &Pending,
        released: &mut HashSet<BlockId>,
    ) {
        for child in pending.waiting_on.get(id).into_iter().flatten() {
            if let Some(block) = pending.blocks.get(child) {
                if released.insert(*child) {
                    self.push(block.clone());
                }
            }
        }
        for child in self.local_waiting.remove(id).unwrap_or_default() {
            if let Some((block, _)) = self.waiting.remove(&child) {
                self.push(block);
            }
        }
    }
}

/// One chain in one store.
pub struct Chain<S: BlockStore> {
    store: S,
    id: BlockId,
    state: ChainState,
    heights: HashMap<BlockId, u64>,
    pending: Pending,
    watchers: Vec<mpsc::UnboundedSender<u64>>,
    /// The rules this replica knows: the chain's own, and an authority's for a bound chain.
    rules: Rules,
    /// The rule the chain's genesis calls for, if any.
    admission: Option<Guard>,
    /// Blocks the rule refused (bounded; see [`REFUSED_CACHE`]).
    refused: HashSet<BlockId>,
    /// The authority a bound chain's writers answer to, if the chain is bound.
    binding: Option<Binding>,
    /// Blocks held until an authority grows (see [`ChainError::AwaitingAuthority`]), with
    /// the authority chain and the block of it each waits for.
    awaiting: HashMap<BlockId, (Block, BlockId, BlockId)>,
    /// Views of chains that blocks' checks reference (see [`Admission::reference`]), the
    /// most recently made last; bounded by [`REFERENCE_VIEWS`].
    references: Vec<ReferenceView>,
    /// Blocks whose signature this handle checked (when it took them in, or on a first
    /// read), so that a chain held to a rule verifies each stored block once per handle (see
    /// [`Chain::read`]). Bounded by [`VERIFIED_CACHE`].
    verified: std::sync::Mutex<HashSet<BlockId>>,
}

impl<S: BlockStore> std::fmt::Debug for Chain<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain")
            .field("id", &self.id)
            .field("blocks", &self.state.next_seq)
            .field("leaves", &self.state.leaves.len())
            .field("pending", &self.pending.blocks.len())
            .field("admission", &self.admission.is_some())
            .field("bound", &self.binding.as_ref().map(|b| b.authority))
            .finish()
    }
}

impl<S: BlockStore> Chain<S> {
    /// Creates a new chain whose genesis block is signed by `key`, held to the rule of
    /// `rules` its topics claim (see [`super::Rules`]).
    pub async fn create(
        store: S,
        rules: &Rules,
        key: &SigningKey,
        time: u64,
        topics: Vec<String>,
        body: Vec<u8>,
    ) -> Result<Self, ChainError> {
        let genesis = BlockDraft {
            chain: None,
            parents: Vec::new(),
            height: 0,
            time,
            topics,
            body,
        }
        .sign(key)?;
        Self::from_genesis(store, rules, genesis).await
    }

    /// Opens the chain that starts with `genesis`, storing the genesis if the store lacks it.
    /// This is how a replica of someone else's chain begins. A genesis claiming a kind of
    /// chain `rules` do not know is refused with [`ChainError::Rules`].
    pub async fn from_genesis(store: S, rules: &Rules, genesis: Block) -> Result<Self, ChainError> {
        if genesis.chain().is_some() {
            return Err(ChainError::NotGenesis(genesis.id()));
        }
        let id = genesis.id();
        if store.chain_state(&id).await?.is_some() {
            return Self::open(store, rules, id).await;
        }
        let claim = rules.claim(&genesis)?;
        let binding = binding_for(&claim, &genesis)
            .map_err(|e| ChainError::NotAdmitted(Refused::new(BoundRefusal::from(e))))?;
        let state = ChainState {
            next_seq: 1,
            leaves: vec![id],
        };
        let commit = Commit {
            chain: id,
            expected: None,
            blocks: vec![record(&genesis, 0)],
            state: state.clone(),
        };
        match store.commit(&commit).await {
            Ok(()) => {}
            // Another handle stored the same genesis first: the chain exists, open it.
            Err(StoreError::Conflict { .. }) => return Self::open(store, rules, id).await,
            Err(e) => return Err(e.into()),
        }
        let admission = into_rule(claim).map(|rule| Guard::at_genesis(rule, &genesis));
        Ok(Self::with_state(
            store,
            rules.clone(),
            id,
            state,
            admission,
            binding,
        ))
    }

    /// Opens a chain the store holds, held to the rule of `rules` its genesis claims; a
    /// claim they do not know is [`ChainError::Rules`].
    pub async fn open(store: S, rules: &Rules, id: BlockId) -> Result<Self, ChainError> {
        let state = store
            .chain_state(&id)
            .await?
            .ok_or(ChainError::UnknownChain(id))?;
        let Some(genesis) = store.block(&id, &id).await? else {
            return Err(StoreError::Corrupt(format!("chain {id} has no genesis block")).into());
        };
        let genesis = entry(genesis, Some(&id))?.block;
        let claim = rules.claim(&genesis)?;
        let binding = binding_for(&claim, &genesis)
            .map_err(|e| StoreError::Corrupt(format!("genesis of bound chain {id}: {e}")))?;
        let admission = into_rule(claim).map(Guard::unbuilt);
        Ok(Self::with_state(
            store,
            rules.clone(),
            id,
            state,
            admission,
            binding,
        ))
    }

    fn with_state(
        store: S,
        rules: Rules,
        id: BlockId,
        state: ChainState,
        admission: Option<Guard>,
        binding: Option<Binding>,
    ) -> Self {
        Chain {
            store,
            rules,
            id,
            state,
            heights: HashMap::new(),
            pending: Pending::default(),
            watchers: Vec::new(),
            // A bound chain answers to its authority, not to a rule of its own.
            admission: if binding.is_some() { None } else { admission },
            refused: HashSet::new(),
            binding,
            awaiting: HashMap::new(),
            references: Vec::new(),
            verified: std::sync::Mutex::new(HashSet::new()),
        }
    }

    /// Whether the chain holds its blocks to an admission rule (an identity chain does, and
    /// so does a chain bound to one).
    pub fn has_admission_rule(&self) -> bool {
        self.admission.is_some() || self.binding.is_some()
    }

    /// The authority chain a bound chain's writers answer to (see [`super::binding`]).
    pub fn authority(&self) -> Option<BlockId> {
        self.binding.as_ref().map(|b| b.authority)
    }

    /// Tells the admission rule's view about blocks another handle on the same store wrote
    /// (parents first), so that the next block on top of them is checked without reading the
    /// chain again. Blocks that do not follow the view are left for a rebuild.
    pub fn follow(&mut self, blocks: &[Block]) {
        let Some(guard) = &mut self.admission else {
            return;
        };
        for block in blocks {
            // Stored by a handle that applies the same rule: admitted already.
            if guard.fits(block) {
                guard.extend(block);
            }
        }
    }

    /// The chain ID: the ID of its genesis block.
    pub fn id(&self) -> BlockId {
        self.id
    }

    /// The store the chain lives in.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The rules this chain was opened with: replicas of chains bound to it, or found from
    /// it, are opened with the same.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Re-reads the chain state, picking up blocks other handles on the same store wrote.
    pub async fn refresh(&mut self) -> Result<(), ChainError> {
        self.state = self
            .store
            .chain_state(&self.id)
            .await?
            .ok_or(ChainError::UnknownChain(self.id))?;
        Ok(())
    }

    /// The number of blocks stored, the genesis included.
    pub fn len(&self) -> u64 {
        self.state.next_seq
    }

    /// Never true: a chain always holds its genesis.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The current leaves (blocks without children), sorted by ID.
    pub fn leaves(&self) -> &[BlockId] {
        &self.state.leaves
    }

    /// Number of blocks waiting for missing parents.
    pub fn pending_len(&self) -> usize {
        self.pending.blocks.len()
    }

    /// A channel that receives the block count after every write through this handle.
    pub fn watch(&mut self) -> mpsc::UnboundedReceiver<u64> {
        let (tx, rx) = mpsc::unbounded();
        self.watchers.push(tx);
        rx
    }

    /// Appends blocks written by `key`, one after the other: each block's parents are all
    /// the leaves at that moment, so the batch forms a line on top of the current DAG.
    /// (In a bound chain, leaves by a removed device are left out; see
    /// [`super::binding`].) Written in one transaction.
    pub async fn append(
        &mut self,
        key: &SigningKey,
        time: u64,
        items: Vec<(Vec<u8>, Vec<String>)>,
    ) -> Result<Vec<Entry>, ChainError> {
        let mut attempt = 0;
        loop {
            let (blocks, heights) = self.sign_on_leaves(key, time, &items).await?;
            match self.write(&blocks).await {
                Ok(first) => {
                    self.remember(heights);
                    self.notify();
                    return Ok(entries(first, blocks));
                }
                Err(ChainError::Store(StoreError::Conflict { .. }))
                    if attempt < CONFLICT_RETRIES =>
                {
                    attempt += 1;
                    self.refresh().await?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Signs the blocks [`Chain::append`] would write now, without storing them, so that they
    /// can travel to peers while [`Chain::store_signed`] stores them.
    pub async fn sign(
        &mut self,
        key: &SigningKey,
        time: u64,
        items: &[(Vec<u8>, Vec<String>)],
    ) -> Result<Vec<Block>, ChainError> {
        Ok(self.sign_on_leaves(key, time, items).await?.0)
    }

    /// Stores blocks from [`Chain::sign`]. If another writer changed the chain since, they are
    /// inserted like a peer's blocks (beside that writer's, not on top): they may be out
    /// already, so they are never signed again.
    pub async fn store_signed(&mut self, blocks: Vec<Block>) -> Result<Vec<Entry>, ChainError> {
        let heights: HashMap<BlockId, u64> = blocks.iter().map(|b| (b.id(), b.height())).collect();
        match self.write(&blocks).await {
            Ok(first) => {
                self.remember(heights);
                self.notify();
                Ok(entries(first, blocks))
            }
            Err(ChainError::Store(StoreError::Conflict { .. })) => {
                self.refresh().await?;
                let report = self.insert(blocks.iter().map(Block::bytes)).await?;
                if let Some((_, e)) = report.rejected.into_iter().next() {
                    return Err(e);
                }
                // Accepted now, or stored already by that writer (a tab that got them from a
                // peer): read back either way.
                let mut stored = Vec::with_capacity(blocks.len());
                for block in &blocks {
                    match self.block(&block.id()).await? {
                        Some(entry) => stored.push(entry),
                        None => {
                            return Err(StoreError::Corrupt(format!(
                                "signed block {} on stored leaves was not stored",
                                block.id()
                            ))
                            .into())
                        }
                    }
                }
                Ok(stored)
            }
            Err(e) => Err(e),
        }
    }

    /// Signs one block per item on top of the current leaves (each on the previous one; in a
    /// bound chain, on the leaves it may build on), with the heights they get.
    async fn sign_on_leaves(
        &mut self,
        key: &SigningKey,
        time: u64,
        items: &[(Vec<u8>, Vec<String>)],
    ) -> Result<(Vec<Block>, HashMap<BlockId, u64>), ChainError> {
        let mut blocks = Vec::with_capacity(items.len());
        let mut leaves = match items.first() {
            Some((body, _)) if self.binding.is_some() => self.live_leaves(body).await?,
            _ => self.state.leaves.clone(),
        };
        let mut heights: HashMap<BlockId, u64> = HashMap::new();
        for (body, topics) in items {
            // More leaves than a block may name: merge the first ones now, the rest later.
            let rest = leaves.split_off(leaves.len().min(MAX_PARENTS));
            let mut height = 0;
            for parent in &leaves {
                let parent_height = match heights.get(parent) {
                    Some(h) => Some(*h),
                    None => self.height_of(parent).await?,
                };
                let parent_height = parent_height
                    .ok_or_else(|| StoreError::Corrupt(format!("leaf {parent} is not stored")))?;
                height = height.max(parent_height + 1);
            }
            let block = BlockDraft {
                chain: Some(self.id),
                parents: leaves,
                height,
                time,
                topics: topics.clone(),
                body: body.clone(),
            }
            .sign(key)?;
            // Refused here, a block never leaves this replica: peers would refuse it too.
            self.admit(&block, &blocks, Planning::Insert)
                .await?
                .map_err(ChainError::from)?;
            heights.insert(block.id(), height);
            leaves = rest;
            leaves.push(block.id());
            leaves.sort_unstable();
            blocks.push(block);
        }
        Ok((blocks, heights))
    }

    /// Judges a block as [`Chain::insert`] would, without storing it or holding it pending:
    /// what a gossip hop needs to decide whether to forward a block before its own write.
    pub async fn judge(&mut self, bytes: &[u8]) -> Result<Judgement, ChainError> {
        let id = BlockId::of(bytes);
        if self.pending.blocks.contains_key(&id) {
            return Ok(Judgement::Undecided);
        }
        if self.heights.contains_key(&id) {
            return Ok(Judgement::Admissible);
        }
        let block = match Block::decode_hashed(bytes, id) {
            Ok(block) if block.chain_id() == self.id => block,
            _ => return Ok(Judgement::Refused),
        };
        let plan = self
            .plan(std::slice::from_ref(&block), Planning::Judge)
            .await?;
        let refused = plan.rejected.iter().any(|(rejected, e)| {
            *rejected == id && matches!(e, ChainError::InvalidBlock(_) | ChainError::NotAdmitted(_))
        });
        Ok(if plan.accepted.iter().any(|b| b.id() == id) {
            Judgement::Admissible
        } else if refused {
            Judgement::Refused
        } else {
            Judgement::Undecided
        })
    }

    /// Offers blocks received from anywhere (a peer, a file). Each is decoded and checked;
    /// those whose parents are all known are accepted and stored in one transaction, the
    /// others wait until their parents arrive. Invalid ones are reported, never stored.
    pub async fn insert<B: AsRef<[u8]>>(
        &mut self,
        items: impl IntoIterator<Item = B>,
    ) -> Result<InsertReport, ChainError> {
        let mut report = InsertReport::default();
        let mut fresh = Vec::new();
        let mut seen = HashSet::new();
        for bytes in items {
            let bytes = bytes.as_ref();
            let id = BlockId::of(bytes);
            if !seen.insert(id) {
                report.duplicates.push(id);
                continue;
            }
            match Block::decode_hashed(bytes, id) {
                Err(e) => report.rejected.push((id, e.into())),
                Ok(block) if block.chain_id() != self.id => report.rejected.push((
                    id,
                    BlockError::WrongChain {
                        expected: self.id,
                        actual: block.chain(),
                    }
                    .into(),
                )),
                Ok(block) => fresh.push(block),
            }
        }
        // Blocks pending or known stored are duplicates. No store lookup for the others: the
        // commit refuses blocks it already holds, and the retry below sorts them out. A block
        // from a peer costs one transaction, not two.
        fresh.retain(|block| {
            let id = block.id();
            let duplicate = self.pending.blocks.contains_key(&id) || self.heights.contains_key(&id);
            if duplicate {
                report.duplicates.push(id);
            }
            !duplicate
        });
        let mut attempt = 0;
        let (first, plan) = loop {
            let plan = self.plan(&fresh, Planning::Insert).await?;
            match self.write(&plan.accepted).await {
                Ok(first) => break (first, plan),
                Err(ChainError::Store(StoreError::Conflict { .. }))
                    if attempt < CONFLICT_RETRIES =>
                {
                    attempt += 1;
                    self.refresh().await?;
                    // Blocks already stored (by another writer, or before this handle's
                    // cache) are duplicates: one batched lookup.
                    let ids: Vec<BlockId> = fresh.iter().map(Block::id).collect();
                    let stored = self.heights_of(&ids).await?;
                    fresh.retain(|block| {
                        let duplicate = stored.contains_key(&block.id());
                        if duplicate {
                            report.duplicates.push(block.id());
                        }
                        !duplicate
                    });
                }
                Err(e) => return Err(e),
            }
        };
        for id in &plan.released {
            self.pending.remove(id);
        }
        for (block, missing) in plan.waiting {
            let id = block.id();
            match self.pending.add(block, &missing) {
                Ok(()) => report.waiting.push((id, missing)),
                Err(e) => report.rejected.push((id, e)),
            }
        }
        report.rejected.extend(plan.rejected);
        if self.refused.len() + plan.refused.len() > REFUSED_CACHE {
            self.refused.clear();
        }
        self.refused.extend(plan.refused);
        for (block, authority, missing) in plan.awaiting {
            if self.awaiting.len() < MAX_AWAITING {
                self.awaiting
                    .insert(block.id(), (block, authority, missing));
            }
        }
        self.remember(plan.heights);
        if self.has_admission_rule() {
            self.remember_verified(plan.accepted.iter().map(Block::id));
        }
        if !plan.accepted.is_empty() {
            self.notify();
        }
        report.accepted = entries(first, plan.accepted);
        Ok(report)
    }

    /// Resolves `fresh` blocks and the pending blocks they complete, lowest height first so
    /// that parents offered in the same batch come before their children.
    async fn plan(&mut self, fresh: &[Block], planning: Planning) -> Result<Plan, ChainError> {
        let mut plan = Plan::default();
        let mut frontier = Frontier {
            queue: BinaryHeap::new(),
            queued: HashMap::new(),
            local_waiting: HashMap::new(),
            waiting: HashMap::new(),
        };
        for block in fresh {
            frontier.push(block.clone());
        }
        // Parents from outside the batch, looked up in one go.
        let outside: HashSet<BlockId> = fresh
            .iter()
            .flat_map(|block| block.parents())
            .filter(|parent| !frontier.queued.contains_key(*parent))
            .copied()
            .collect();
        let stored = self
            .heights_of(&outside.iter().copied().collect::<Vec<_>>())
            .await?;
        while let Some(Reverse((_, id))) = frontier.queue.pop() {
            let Some(block) = frontier.queued.remove(&id) else {
                continue;
            };
            let refused = |p: &BlockId| plan.refused.contains(p) || self.refused.contains(p);
            let verdict = if refused(&id) || block.parents().iter().any(refused) {
                Err(Refusal::Refused(Refused::new(
                    ChainRefusal::AncestorRefused,
                )))
            } else {
                let mut missing = Vec::new();
                let mut height = 0;
                for parent in block.parents() {
                    let known = match plan.heights.get(parent).or_else(|| stored.get(parent)) {
                        Some(h) => Some(*h),
                        // Only parents of released pending blocks were not looked up above.
                        None if outside.contains(parent) => None,
                        None => self.height_of(parent).await?,
                    };
                    match known {
                        Some(h) => height = height.max(h + 1),
                        None => missing.push(*parent),
                    }
                }
                if !missing.is_empty() {
                    for parent in &missing {
                        frontier.local_waiting.entry(*parent).or_default().push(id);
                    }
                    frontier.waiting.insert(id, (block, missing));
                    continue;
                }
                frontier.waiting.remove(&id);
                if block.height() != height {
                    let error = BlockError::HeightMismatch {
                        expected: height,
                        actual: block.height(),
                    };
                    plan.rejected.push((id, error.into()));
                    continue;
                }
                self.admit(&block, &plan.accepted, planning)
                    .await?
                    .map(|()| height)
            };
            match verdict {
                Ok(height) => {
                    plan.heights.insert(id, height);
                    plan.accepted.push(block);
                }
                // Refused: so are the blocks waiting for it, released below to be refused.
                Err(Refusal::Refused(why)) => {
                    plan.refused.insert(id);
                    plan.rejected.push((id, ChainError::NotAdmitted(why)));
                }
                // Undecided: set aside, its children wait for it as for a missing parent.
                Err(awaiting) => {
                    if let Refusal::Awaiting { authority, missing } = &awaiting {
                        plan.awaiting.push((block, *authority, *missing));
                    }
                    plan.rejected.push((id, awaiting.into()));
                    continue;
                }
            }
            if planning == Planning::Insert {
                frontier.release_children(&id, &self.pending, &mut plan.released);
            }
        }
        plan.waiting = frontier.waiting.into_values().collect();
        plan.waiting.sort_by_key(|(block, _)| block.position());
        Ok(plan)
    }

    /// Applies the chain's admission rule to `block`, whose parents are stored or among
    /// `batch` (blocks about to be stored with it). The outer error is a store failure, the
    /// inner one the rule's refusal.
    async fn admit(
        &mut self,
        block: &Block,
        batch: &[Block],
        planning: Planning,
    ) -> Result<Result<(), Refusal>, ChainError> {
        // The genesis made the rule; offered again it is a duplicate, not a candidate.
        if block.id() == self.id {
            return Ok(Ok(()));
        }
        if self.binding.is_some() {
            return self.admit_bound(block, batch).await;
        }
        let Some(guard) = &self.admission else {
            return Ok(Ok(()));
        };
        if !guard.fits(block) {
            // From a kept view if one covers where the walk back stops (see
            // `super::admission`), else from the whole ancestry.
            let (fresh, stops) = self
                .walk_back(block.parents(), batch, |id| guard.stops_at(id))
                .await?;
            let resumed = match &mut self.admission {
                Some(guard) => guard.resume(&stops, &fresh, block.parents()),
                None => false,
            };
            if !resumed {
                // A walk that met no view read the whole ancestry already.
                let ancestry = if stops.is_empty() {
                    fresh
                } else {
                    self.ancestry(block.parents(), batch).await?
                };
                if let Some(guard) = &mut self.admission {
                    guard.rebuild(&ancestry, block.parents());
                }
            }
        }
        // A block whose check names another chain's view (see `Admission::reference`).
        let reference = self.admission.as_ref().and_then(|g| g.reference(block));
        let view = match reference {
            Some((chain, anchor)) => match self.reference_view(chain, anchor).await? {
                Ok(at) => Some(at),
                Err(refusal) => return Ok(Err(refusal)),
            },
            None => None,
        };
        let view = view.and_then(|at| self.references.get(at));
        // A judged block is not folded into the view: the insert that follows finds the
        // view still at the block's parents and checks it again without a rebuild.
        Ok(match (&mut self.admission, planning) {
            (Some(guard), Planning::Insert) => guard.admit(block, view).map_err(Refusal::Refused),
            (Some(guard), Planning::Judge) => guard.check(block, view).map_err(Refusal::Refused),
            (None, _) => Ok(()),
        })
    }

    /// The index in `references` of `chain`'s view at `anchor`, made (from the anchor's
    /// ancestry in this store, judged by the rule `chain`'s genesis claims) if not kept;
    /// `Awaiting` if part of the anchor is not stored.
    async fn reference_view(
        &mut self,
        chain: BlockId,
        mut anchor: Vec<BlockId>,
    ) -> Result<Result<usize, Refusal>, ChainError> {
        anchor.sort_unstable();
        anchor.dedup();
        if let Some(at) = self
            .references
            .iter()
            .position(|v| v.chain == chain && v.anchor == anchor)
        {
            return Ok(Ok(at));
        }
        let ancestry = match self.ancestry_in(&chain, &anchor, &[]).await? {
            Ok(ancestry) => ancestry,
            Err(missing) => {
                return Ok(Err(Refusal::Awaiting {
                    authority: chain,
                    missing,
                }))
            }
        };
        let mut rule = match ancestry.first().filter(|genesis| genesis.id() == chain) {
            Some(genesis) => self.rules.claim(genesis).ok().and_then(into_rule),
            None => None,
        };
        if let Some(rule) = &mut rule {
            rule.rebuild(&ancestry);
        }
        if self.references.len() >= REFERENCE_VIEWS {
            self.references.remove(0);
        }
        self.references.push(ReferenceView {
            chain,
            anchor,
            reached: ancestry.len() as u64,
            rule,
        });
        Ok(Ok(self.references.len() - 1))
    }

    /// Applies a bound chain's checks (see [`super::binding`]) to `block`, whose parents are
    /// stored or among `batch`.
    async fn admit_bound(
        &mut self,
        block: &Block,
        batch: &[Block],
    ) -> Result<Result<(), Refusal>, ChainError> {
        let anchored = match Anchored::parse(block) {
            Ok(anchored) => anchored,
            Err(e) => return Ok(Err(Refusal::Refused(Refused::new(BoundRefusal::from(e))))),
        };
        let mut parents = Vec::with_capacity(block.parents().len());
        for parent in block.parents() {
            parents.push((*parent, self.stamp_of(parent, batch).await?));
        }
        if let Err(refusal) = self.view_at(&anchored.anchor).await? {
            return Ok(Err(refusal));
        }
        let Some(binding) = &mut self.binding else {
            return Ok(Ok(()));
        };
        let verdict = match binding.view(&anchored.anchor) {
            Some(view) => binding
                .judge(view, &block.author(), &parents)
                .map_err(Refused::new),
            // view_at just kept it; only a cache smaller than one view could lose it.
            None => Err(Refused::new(ChainRefusal::AuthorityUnseen)),
        };
        if verdict.is_ok() {
            let stamp = Stamp {
                anchor: anchored.anchor,
                author: block.author(),
            };
            binding.remember(block.id(), stamp);
        }
        Ok(verdict.map_err(Refusal::Refused))
    }

    /// The stamp of a bound chain's block that is stored or in `batch`. Admitted blocks'
    /// stamps are cached, so the batch (searched from its end, where parents usually are)
    /// and the store are read only after the cache was cleared.
    async fn stamp_of(&self, id: &BlockId, batch: &[Block]) -> Result<Stamp, ChainError> {
        if let Some(stamp) = self.binding.as_ref().and_then(|b| b.stamp_of(id)) {
            return Ok(stamp.clone());
        }
        let block = match batch.iter().rev().find(|b| b.id() == *id) {
            Some(block) => block.clone(),
            None => {
                self.block(id)
                    .await?
                    .ok_or_else(|| StoreError::Corrupt(format!("block {id} is not stored")))?
                    .block
            }
        };
        let anchor = Anchored::parse(&block)
            .map_err(|e| StoreError::Corrupt(format!("bound block {id}: {e}")))?
            .anchor;
        Ok(Stamp {
            anchor,
            author: block.author(),
        })
    }

    /// Makes sure the binding keeps a view of the authority at `anchor`; `Awaiting` if part
    /// of the anchor's ancestry is not stored yet.
    async fn view_at(&mut self, anchor: &[BlockId]) -> Result<Result<(), Refusal>, ChainError> {
        let Some(binding) = &self.binding else {
            return Ok(Ok(()));
        };
        if binding.view(anchor).is_some() {
            return Ok(Ok(()));
        }
        let authority = binding.authority;
        let ancestry = match self.ancestry_in(&authority, anchor, &[]).await? {
            Ok(ancestry) => ancestry,
            Err(missing) => return Ok(Err(Refusal::Awaiting { authority, missing })),
        };
        // The authority is held to the rule its own genesis claims under this replica's rules;
        // an authority of a kind they do not know authorises nobody.
        let rule = match ancestry.first().filter(|genesis| genesis.id() == authority) {
            Some(genesis) => self.rules.claim(genesis).ok().and_then(into_rule),
            None => None,
        };
        let view = AuthorityView::new(anchor.to_vec(), &ancestry, rule);
        if let Some(binding) = &mut self.binding {
            binding.keep_view(view);
        }
        Ok(Ok(()))
    }

    /// The parents a block of this bound chain with `body` gets: the leaves, except those a
    /// block anchored where the body says must not build on (see [`super::binding`]), each
    /// replaced by its own parents, recursively. The replacements may be ancestors of other
    /// parents too, which is harmless. For other chains, and for bodies that do not parse
    /// (refused later), the leaves.
    async fn live_leaves(&mut self, body: &[u8]) -> Result<Vec<BlockId>, ChainError> {
        let leaves = self.state.leaves.clone();
        let Ok(anchored) = Anchored::parse_body(body, false) else {
            return Ok(leaves);
        };
        if self.binding.is_none() || self.view_at(&anchored.anchor).await?.is_err() {
            return Ok(leaves);
        }
        let mut live = BTreeSet::new();
        let mut seen = HashSet::new();
        let mut stack = leaves;
        while let Some(id) = stack.pop() {
            if !seen.insert(id) {
                continue;
            }
            let stamp = self.stamp_of(&id, &[]).await?;
            let dead = match &self.binding {
                Some(binding) => binding
                    .view(&anchored.anchor)
                    .is_some_and(|view| binding.is_dead(view, &id, &stamp)),
                None => false,
            };
            if !dead {
                live.insert(id);
                continue;
            }
            let block = self
                .block(&id)
                .await?
                .ok_or_else(|| StoreError::Corrupt(format!("leaf {id} is not stored")))?
                .block;
            stack.extend_from_slice(block.parents());
        }
        Ok(live.into_iter().collect())
    }

    /// The blocks `roots` reach, stored or in `batch`, until blocks for which `stop` holds:
    /// those read, in chain order, and where the walk stopped.
    async fn walk_back(
        &self,
        roots: &[BlockId],
        batch: &[Block],
        stop: impl Fn(&BlockId) -> bool,
    ) -> Result<(Vec<Block>, HashSet<BlockId>), ChainError> {
        let batch: HashMap<BlockId, &Block> = batch.iter().map(|b| (b.id(), b)).collect();
        let mut reached = HashSet::new();
        let mut stops = HashSet::new();
        let mut fresh = Vec::new();
        let mut stack = roots.to_vec();
        while let Some(id) = stack.pop() {
            if !reached.insert(id) {
                continue;
            }
            if stop(&id) {
                stops.insert(id);
                continue;
            }
            let block = match batch.get(&id) {
                Some(block) => (*block).clone(),
                None => match self.store.block(&self.id, &id).await? {
                    Some(stored) => self.checked_entry(stored, Some(&id), true)?.block,
                    None => {
                        return Err(
                            StoreError::Corrupt(format!("ancestor {id} is not stored")).into()
                        )
                    }
                },
            };
            stack.extend(block.parents().iter().filter(|p| !reached.contains(*p)));
            fresh.push(block);
        }
        fresh.sort_by_key(Block::position);
        Ok((fresh, stops))
    }

    /// Every block `parents` reach, stored or in `batch`, in chain order. Reads only the
    /// ancestry, block by block: a join request on the genesis costs one read, however long
    /// the chain.
    async fn ancestry(
        &self,
        parents: &[BlockId],
        batch: &[Block],
    ) -> Result<Vec<Block>, ChainError> {
        self.ancestry_in(&self.id, parents, batch)
            .await?
            .map_err(|id| StoreError::Corrupt(format!("ancestor {id} is not stored")).into())
    }

    /// Every block of this chain that `roots` reach, roots included, in chain order; or the
    /// first block found missing. Reads only that ancestry.
    pub async fn ancestry_of(
        &self,
        roots: &[BlockId],
    ) -> Result<Result<Vec<Block>, BlockId>, ChainError> {
        self.ancestry_in(&self.id, roots, &[]).await
    }

    /// Every block of `chain` (in this chain's store) that `roots` reach, roots included,
    /// stored or in `batch`, in chain order; or the first block found missing.
    async fn ancestry_in(
        &self,
        chain: &BlockId,
        roots: &[BlockId],
        batch: &[Block],
    ) -> Result<Result<Vec<Block>, BlockId>, ChainError> {
        let batch: HashMap<BlockId, &Block> = batch.iter().map(|b| (b.id(), b)).collect();
        let mut reached = HashSet::new();
        let mut ancestry = Vec::new();
        let mut stack = roots.to_vec();
        while let Some(id) = stack.pop() {
            if !reached.insert(id) {
                continue;
            }
            let block = match batch.get(&id) {
                Some(block) => (*block).clone(),
                None => match self.store.block(chain, &id).await? {
                    // An authority chain is held to a rule: its records are checked again.
                    Some(stored) => self.checked_entry(stored, Some(&id), true)?.block,
                    None => return Ok(Err(id)),
                },
            };
            stack.extend(
                block
                    .parents()
                    .iter()
                    .filter(|parent| !reached.contains(*parent)),
            );
            ancestry.push(block);
        }
        ancestry.sort_by_key(Block::position);
        Ok(Ok(ancestry))
    }

    /// Stores accepted blocks and the leaves after them in one transaction; returns the
    /// sequence number of the first.
    async fn write(&mut self, blocks: &[Block]) -> Result<u64, ChainError> {
        let first = self.state.next_seq;
        if blocks.is_empty() {
            return Ok(first);
        }
        let mut leaves: BTreeSet<BlockId> = self.state.leaves.iter().copied().collect();
        let mut records = Vec::with_capacity(blocks.len());
        for (i, block) in blocks.iter().enumerate() {
            for parent in block.parents() {
                leaves.remove(parent);
            }
            leaves.insert(block.id());
            records.push(record(block, self.state.next_seq + i as u64));
        }
        let state = ChainState {
            next_seq: self.state.next_seq + blocks.len() as u64,
            leaves: leaves.into_iter().collect(),
        };
        let commit = Commit {
            chain: self.id,
            expected: Some(self.state.clone()),
            blocks: records,
            state,
        };
        self.store.commit(&commit).await?;
        self.state = commit.state;
        Ok(first)
    }

    fn notify(&mut self) {
        let count = self.state.next_seq;
        self.watchers
            .retain(|watcher| watcher.unbounded_send(count).is_ok());
    }

    fn remember(&mut self, heights: HashMap<BlockId, u64>) {
        if self.heights.len() + heights.len() > HEIGHT_CACHE {
            self.heights.clear();
        }
        self.heights.extend(heights);
    }

    /// Whether blocks of this bound chain wait for their authority to grow.
    pub fn has_awaiting(&self) -> bool {
        !self.awaiting.is_empty()
    }

    /// Whether any received block waits for a block of `authority` (see
    /// [`Chain::retry_awaiting`]).
    pub fn awaits(&self, authority: &BlockId) -> bool {
        self.awaiting.values().any(|(_, a, _)| a == authority)
    }

    /// Judges again the blocks held for the authority (see
    /// [`ChainError::AwaitingAuthority`]) whose missing authority block is stored now: call
    /// it when the authority chain grew. The others stay held, and so do those that turn
    /// out to wait for another authority block.
    pub async fn retry_awaiting(&mut self) -> Result<InsertReport, ChainError> {
        let mut wanted: Vec<(BlockId, BlockId)> =
            self.awaiting.values().map(|(_, a, m)| (*a, *m)).collect();
        wanted.sort_unstable();
        wanted.dedup();
        let mut arrived: HashSet<(BlockId, BlockId)> = HashSet::new();
        for authority in wanted.iter().map(|(a, _)| *a).collect::<BTreeSet<_>>() {
            let missing: Vec<BlockId> = wanted
                .iter()
                .filter(|(a, _)| *a == authority)
                .map(|(_, m)| *m)
                .collect();
            let found = self.store.heights(&authority, &missing).await?;
            arrived.extend(
                missing
                    .into_iter()
                    .zip(found)
                    .filter_map(|(id, height)| height.map(|_| (authority, id))),
            );
        }
        let ready: Vec<BlockId> = self
            .awaiting
            .iter()
            .filter(|(_, (_, authority, missing))| arrived.contains(&(*authority, *missing)))
            .map(|(id, _)| *id)
            .collect();
        let mut held: Vec<Block> = ready
            .iter()
            .filter_map(|id| self.awaiting.remove(id).map(|(block, _, _)| block))
            .collect();
        held.sort_by_key(Block::position);
        self.insert(held.iter().map(Block::bytes)).await
    }

    /// Whether any received block waits for a parent.
    pub fn has_pending(&self) -> bool {
        !self.pending.blocks.is_empty()
    }

    /// Bytes of the blocks waiting for parents.
    pub fn pending_bytes(&self) -> usize {
        self.pending.bytes
    }

    /// The size of a block waiting for parents, `None` if it is not waiting.
    pub fn pending_size(&self, id: &BlockId) -> Option<usize> {
        self.pending.blocks.get(id).map(|block| block.bytes().len())
    }

    /// Drops a block waiting for parents (it stayed an orphan too long, or its sender holds
    /// too many). Nothing was stored of it; sync fetches it again if a peer lists it.
    /// Returns whether it was waiting.
    pub fn drop_pending(&mut self, id: &BlockId) -> bool {
        let waiting = self.pending.blocks.contains_key(id);
        self.pending.remove(id);
        waiting
    }

    /// The parents that blocks in the pending set wait for.
    pub fn missing_parents(&self) -> Vec<BlockId> {
        self.pending.waiting_on.keys().copied().collect()
    }

    /// Whether the chain holds the block or has it waiting for parents.
    pub async fn contains(&mut self, id: &BlockId) -> Result<bool, ChainError> {
        Ok(self.pending.blocks.contains_key(id) || self.height_of(id).await?.is_some())
    }

    /// Whether the chain holds the block `bytes` (pending included), as
    /// [`Chain::contains`], without a store read for a block higher than every leaf: no
    /// stored block is (each has a leaf at or above its height), and a new block pushed by
    /// gossip usually is. Blocks another handle stored since this one last read the chain
    /// state ([`Chain::refresh`]) may be taken for new.
    pub async fn holds_block(&mut self, bytes: &[u8]) -> Result<bool, ChainError> {
        let id = BlockId::of(bytes);
        if self.pending.blocks.contains_key(&id) || self.heights.contains_key(&id) {
            return Ok(true);
        }
        if let Ok(block) = Block::decode_hashed(bytes, id) {
            let leaves = self.state.leaves.clone();
            let top = self.heights_of(&leaves).await?.into_values().max();
            if top.is_some_and(|top| block.height() > top) {
                return Ok(false);
            }
        }
        self.contains(&id).await
    }

    /// Heights of the stored blocks among `ids`, from the cache or one batched store lookup.
    async fn heights_of(&mut self, ids: &[BlockId]) -> Result<HashMap<BlockId, u64>, ChainError> {
        let mut found = HashMap::new();
        let mut unknown = Vec::new();
        for id in ids {
            match self.heights.get(id) {
                Some(height) => {
                    found.insert(*id, *height);
                }
                None => unknown.push(*id),
            }
        }
        unknown.sort_unstable();
        unknown.dedup();
        if !unknown.is_empty() {
            let heights = self.store.heights(&self.id, &unknown).await?;
            let fetched: HashMap<BlockId, u64> = unknown
                .into_iter()
                .zip(heights)
                .filter_map(|(id, height)| height.map(|h| (id, h)))
                .collect();
            found.extend(fetched.iter().map(|(id, h)| (*id, *h)));
            self.remember(fetched);
        }
        Ok(found)
    }

    /// The height of a stored block, `None` if the chain does not hold it.
    async fn height_of(&mut self, id: &BlockId) -> Result<Option<u64>, ChainError> {
        if let Some(height) = self.heights.get(id) {
            return Ok(Some(*height));
        }
        let height = self.store.block(&self.id, id).await?.map(|b| b.height);
        if let Some(height) = height {
            self.remember(HashMap::from([(*id, height)]));
        }
        Ok(height)
    }

    /// One block by ID, `None` if the chain does not hold it.
    pub async fn block(&self, id: &BlockId) -> Result<Option<Entry>, ChainError> {
        match self.store.block(&self.id, id).await? {
            Some(stored) => Ok(Some(self.read(stored, Some(id))?)),
            None => Ok(None),
        }
    }

    /// A page of blocks in chain order (height, then ID), optionally of one topic or author.
    pub async fn blocks(&self, query: Query<'_>) -> Result<Vec<Entry>, ChainError> {
        let index = match (query.topic, query.author) {
            (Some(topic), _) => Index::Topic(topic),
            (None, Some(author)) => Index::Author(author),
            (None, None) => Index::Order,
        };
        let scan = Scan {
            index,
            after: query.after,
            reverse: query.reverse,
            limit: query.limit,
        };
        let mut entries = Vec::new();
        for stored in self.store.scan(&self.id, scan).await? {
            let entry = self.read(stored, None)?;
            // A topic query that also names an author filters by author here.
            if query.topic.is_some() && query.author.is_some_and(|a| *a != entry.block.author()) {
                continue;
            }
            entries.push(entry);
        }
        Ok(entries)
    }

    /// Blocks with a sequence number above `after` (all if `None`), in sequence order, at
    /// most `limit`. Reading on from the last `seq` returned sees every block exactly once,
    /// parents before children, also across restarts and across handles on the same store.
    pub async fn since(&self, after: Option<u64>, limit: usize) -> Result<Vec<Entry>, ChainError> {
        let stored = self.store.since(&self.id, after, limit).await?;
        stored.into_iter().map(|s| self.read(s, None)).collect()
    }

    /// Decodes a block read from this chain's store. Plain chains trust their store (it only
    /// ever took checked blocks); a chain held to a rule (an identity chain, a chain bound to
    /// one) checks each block's signature again, once per handle: something other than this
    /// code may have written the store (an extension, a script with the page's IndexedDB),
    /// and a planted record must not pass for an admin's approval or a member's message. A
    /// record that fails is `StoreError::Corrupt`: the read fails rather than fold it in.
    fn read(&self, stored: StoredBlock, expected: Option<&BlockId>) -> Result<Entry, ChainError> {
        self.checked_entry(stored, expected, self.has_admission_rule())
    }

    fn checked_entry(
        &self,
        stored: StoredBlock,
        expected: Option<&BlockId>,
        verify: bool,
    ) -> Result<Entry, ChainError> {
        if !verify {
            return entry(stored, expected);
        }
        let id = BlockId::of(&stored.bytes);
        let known = self.verified.lock().is_ok_and(|v| v.contains(&id));
        let decode = if known {
            Block::decode_stored_hashed
        } else {
            Block::decode_hashed
        };
        let decoded = decode(&stored.bytes, id);
        let entry = entry_decoded(stored, expected, decoded)?;
        if !known {
            self.remember_verified([id]);
        }
        Ok(entry)
    }

    /// Notes blocks whose signature this handle has checked.
    fn remember_verified(&self, ids: impl IntoIterator<Item = BlockId>) {
        if let Ok(mut verified) = self.verified.lock() {
            if verified.len() >= VERIFIED_CACHE {
                verified.clear();
            }
            verified.extend(ids);
        }
    }
}

fn entries(first: u64, blocks: Vec<Block>) -> Vec<Entry> {
    blocks
        .into_iter()
        .zip(first..)
        .map(|(block, seq)| Entry { seq, block })
        .collect()
}

fn record(block: &Block, seq: u64) -> BlockRecord {
    BlockRecord {
        id: block.id(),
        seq,
        height: block.height(),
        author: block.author(),
        topics: block.topics().to_vec(),
        bytes: block.bytes().to_vec(),
    }
}

/// What a bound chain's genesis binds it to; `None` for chains that are not bound.
fn binding_for(claim: &Claim, genesis: &Block) -> Result<Option<Binding>, binding::BindingError> {
    if !matches!(claim, Claim::Bound) {
        return Ok(None);
    }
    Ok(binding::authority_of(genesis)?.and_then(|anchored| {
        anchored
            .authority
            .map(|authority| Binding::new(authority, genesis, anchored.anchor))
    }))
}

/// The registered rule a claim holds the chain to, if any.
fn into_rule(claim: Claim) -> Option<Box<dyn Admission>> {
    match claim {
        Claim::Ruled(rule) => Some(rule),
        Claim::Plain | Claim::Bound => None,
    }
}

/// Decodes a block read from the store. Its signature was verified before it was stored; a
/// damaged record shows up as a failed decode or an ID mismatch, reported as corruption.
fn entry(stored: StoredBlock, expected: Option<&BlockId>) -> Result<Entry, ChainError> {
    let decoded = Block::decode_stored(&stored.bytes);
    entry_decoded(stored, expected, decoded)
}

/// [`entry`] for a block already decoded (and perhaps verified) from `stored`'s bytes.
fn entry_decoded(
    stored: StoredBlock,
    expected: Option<&BlockId>,
    decoded: Result<Block, BlockError>,
) -> Result<Entry, ChainError> {
    let corrupt = |e: BlockError| StoreError::Corrupt(format!("stored block: {e}"));
    let block = decoded.map_err(corrupt)?;
    if let Some(expected) = expected {
        if block.id() != *expected {
            return Err(corrupt(BlockError::IdMismatch {
                expected: *expected,
                actual: block.id(),
            })
            .into());
        }
    }
    if block.height() != stored.height {
        return Err(
            StoreError::Corrupt(format!("block {} height record differs", block.id())).into(),
        );
    }
    Ok(Entry {
        seq: stored.seq,
        block,
    })
}
