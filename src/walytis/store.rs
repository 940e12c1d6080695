//! The storage port: the [`BlockStore`] trait and the records Walytis persists chains
//! through. Walytis owns it, so that it depends on no adapter; the adapters (memory, redb,
//! IndexedDB) live in [`crate::store`], which re-exports all of this.
//!
//! A store keeps, per chain: each block's bytes under its ID, and indexes by chain order
//! (height, then ID), by arrival sequence number, by topic and by author; and one state
//! record with the leaves and the next sequence number. [`BlockStore::commit`] writes a batch
//! of blocks, their index entries and the new state in **one transaction**: after a crash or
//! a closed tab a store holds either all of a commit or none of it, so no block is ever
//! stored without its parents and no index entry points at nothing.

use super::{Author, BlockId, Position, BLOCK_ID_LEN};

/// Name written into every store so a database of another program, or of an incompatible
/// version of this one, is recognised instead of misread.
pub const FORMAT: &str = "endra-store/1";

/// What went wrong in a store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database exists but was written by something else or by an incompatible version.
    #[error("not an Endra store (format {found:?}, expected {FORMAT:?})")]
    Foreign {
        /// The format marker found, if any.
        found: Option<String>,
    },
    /// Stored data is damaged: a record does not decode or does not match its key.
    #[error("store is corrupted: {0}")]
    Corrupt(String),
    /// Another writer (another tab, another handle) changed the chain since it was read.
    /// The caller reloads the chain state and retries.
    #[error("chain {chain} was changed by another writer")]
    Conflict {
        /// The chain concerned.
        chain: BlockId,
    },
    /// The underlying database failed (I/O, quota, browser refusal).
    #[error("storage backend failed: {0}")]
    Backend(String),
}

/// One block as written to a store, with the index fields its reader needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockRecord {
    /// The block's ID.
    pub id: BlockId,
    /// Arrival sequence number within its chain (0 for the genesis).
    pub seq: u64,
    /// The block's height.
    pub height: u64,
    /// The block's author.
    pub author: Author,
    /// The block's topics.
    pub topics: Vec<String>,
    /// The block's canonical bytes.
    pub bytes: Vec<u8>,
}

impl BlockRecord {
    /// The record's place in the chain order.
    pub fn position(&self) -> Position {
        Position {
            height: self.height,
            id: self.id,
        }
    }
}

/// A block read back from a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlock {
    /// Arrival sequence number within its chain.
    pub seq: u64,
    /// The block's height.
    pub height: u64,
    /// The block's canonical bytes.
    pub bytes: Vec<u8>,
}

/// The per-chain state record: written by every commit, read when a chain is opened.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChainState {
    /// Sequence number the next accepted block gets; also the number of blocks.
    pub next_seq: u64,
    /// The current leaves (blocks without children), sorted.
    pub leaves: Vec<BlockId>,
}

impl ChainState {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.leaves.len() * BLOCK_ID_LEN);
        out.extend_from_slice(&self.next_seq.to_be_bytes());
        for leaf in &self.leaves {
            out.extend_from_slice(leaf.as_bytes());
        }
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let bad = || StoreError::Corrupt(format!("chain state record of {} bytes", bytes.len()));
        let (seq, leaves) = bytes.split_at_checked(8).ok_or_else(bad)?;
        if leaves.len() % BLOCK_ID_LEN != 0 {
            return Err(bad());
        }
        let leaves = leaves
            .chunks_exact(BLOCK_ID_LEN)
            .map(|id| {
                BlockId::from_bytes(id)
                    .map_err(|e| StoreError::Corrupt(format!("stored leaf ID: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let next_seq = u64::from_be_bytes(seq.try_into().map_err(|_| bad())?);
        Ok(ChainState { next_seq, leaves })
    }
}

/// A batch of accepted blocks and the chain state after them, written atomically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// The chain the blocks belong to.
    pub chain: BlockId,
    /// The state the writer read before making this commit; the store refuses the commit with
    /// [`StoreError::Conflict`] if the stored state differs (another writer got there first),
    /// or if it already holds one of the blocks (the writer did not know it had it).
    /// `None` when the chain is being created.
    pub expected: Option<ChainState>,
    /// The blocks, in sequence order.
    pub blocks: Vec<BlockRecord>,
    /// The chain state after the blocks.
    pub state: ChainState,
}

/// Which index [`BlockStore::scan`] walks. Each is ordered by [`Position`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Index<'a> {
    /// Every block of the chain.
    Order,
    /// Blocks carrying this topic.
    Topic(&'a str),
    /// Blocks signed by this author.
    Author(&'a Author),
}

/// A page request for [`BlockStore::scan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scan<'a> {
    /// The index to walk.
    pub index: Index<'a>,
    /// Start strictly after (or, reversed, strictly before) this position.
    pub after: Option<Position>,
    /// Walk from the newest to the oldest.
    pub reverse: bool,
    /// Most blocks to return.
    pub limit: usize,
}

/// Persistence of chains. Implementations are cheap handles onto one database.
///
/// Futures are not `Send`: the browser implementation lives on the page's single thread.
#[allow(async_fn_in_trait)]
pub trait BlockStore {
    /// Writes a commit atomically (see [`Commit`]).
    async fn commit(&self, commit: &Commit) -> Result<(), StoreError>;
    /// The state of a chain, `None` if the store does not hold it.
    async fn chain_state(&self, chain: &BlockId) -> Result<Option<ChainState>, StoreError>;
    /// Every chain the store holds.
    async fn chains(&self) -> Result<Vec<BlockId>, StoreError>;
    /// One block by ID.
    async fn block(&self, chain: &BlockId, id: &BlockId)
        -> Result<Option<StoredBlock>, StoreError>;
    /// A page of blocks along an index.
    async fn scan(&self, chain: &BlockId, scan: Scan<'_>) -> Result<Vec<StoredBlock>, StoreError>;
    /// Heights of several blocks (`None` where absent), in the order asked. Stores with
    /// costly round trips (IndexedDB) answer all in one transaction.
    async fn heights(
        &self,
        chain: &BlockId,
        ids: &[BlockId],
    ) -> Result<Vec<Option<u64>>, StoreError> {
        let mut heights = Vec::with_capacity(ids.len());
        for id in ids {
            heights.push(self.block(chain, id).await?.map(|b| b.height));
        }
        Ok(heights)
    }
    /// Blocks with a sequence number above `after` (all if `None`), ascending, at most `limit`.
    async fn since(
        &self,
        chain: &BlockId,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<StoredBlock>, StoreError>;
    /// A small value the application keeps beside its chains (a device key, settings).
    async fn setting(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Stores a setting.
    async fn put_setting(&self, key: &str, value: &[u8]) -> Result<(), StoreError>;
}
