//! The content store: where a replica keeps offchain content beside its blocks — each
//! content's segment tree and its sealed segments, by the commitment's root — written in
//! transactions of its own. A port like [`crate::walytis::store::BlockStore`]; the adapters
//! live in `crate::store` (memory and redb so far).
//!
//! The store keeps what it is given: callers check a tree against its commitment
//! ([`super::SegmentTree::verified`]) and a segment against its tree before they put them, so
//! the store only ever holds bytes that verify. An erased content's bytes are dropped and the
//! store refuses them from then on (`put_segment` keeps nothing), so a peer that sends them
//! again cannot bring them back.

use crate::walytis::store::{BlockStore, StoreError};

/// A content's name in the store: its commitment's root.
pub type ContentRoot = [u8; 32];

/// Sealed segments kept per store transaction by a writer or a fetch (512 KiB): a browser's
/// IndexedDB commit costs about as much as writing one segment.
pub const STORE_BATCH: usize = 8;

/// A content of one segment staged to be written with the next block commit (see
/// [`ContentStore::stage_single_segment`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedSegment {
    /// The content's root.
    pub root: ContentRoot,
    /// Its tree's leaves.
    pub leaves: Vec<[u8; 32]>,
    /// Its sealed segment 0.
    pub sealed: Vec<u8>,
}

/// A segment as a peer is served it (see [`ContentStore::segment_to_serve`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Served {
    /// Its sealed bytes.
    Segment(Vec<u8>),
    /// Not kept here.
    NotHeld,
    /// The content was erased.
    Erased,
}

/// A store setting staged to be written with the next block commit (see
/// [`Staging::stage_setting`]): `(key, value)`.
pub type StagedSetting = (String, Vec<u8>);

/// What a store's handles staged and no commit took yet: contents, and settings that count
/// them. Clones share them, as clones of a store share its data.
#[derive(Debug, Clone, Default)]
pub struct Staging(std::sync::Arc<std::sync::Mutex<Staged>>);

#[derive(Debug, Default)]
struct Staged {
    segments: Vec<StagedSegment>,
    settings: Vec<StagedSetting>,
}

impl Staging {
    fn items(&self) -> std::sync::MutexGuard<'_, Staged> {
        // A panic while staging leaves lists of whole items.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Stages one.
    pub fn stage(&self, segment: StagedSegment) {
        self.items().segments.push(segment);
    }

    /// Stages a store setting (see [`crate::walytis::store::BlockStore::put_setting`]) to be
    /// written in the same transaction as the contents staged with it: a count that must
    /// agree with what was kept. A later value for the same key replaces it.
    pub fn stage_setting(&self, key: &str, value: &[u8]) {
        let mut items = self.items();
        items.settings.retain(|(k, _)| k != key);
        items.settings.push((key.to_owned(), value.to_vec()));
    }

    /// What is staged now: a commit writes these, then calls [`Staging::written`] once it
    /// succeeded (a commit that fails leaves them staged).
    pub fn snapshot(&self) -> Vec<StagedSegment> {
        self.items().segments.clone()
    }

    /// The settings staged now, written as [`Staging::snapshot`]'s contents are, then
    /// reported with [`Staging::settings_written`].
    pub fn settings(&self) -> Vec<StagedSetting> {
        self.items().settings.clone()
    }

    /// `written` are kept: no longer staged (by root: another handle may have staged more
    /// meanwhile, or written some of them too).
    pub fn written(&self, written: &[StagedSegment]) {
        if written.is_empty() {
            return;
        }
        self.items()
            .segments
            .retain(|item| !written.iter().any(|w| w.root == item.root));
    }

    /// `written` settings are kept: no longer staged, unless another value was staged for
    /// the key since.
    pub fn settings_written(&self, written: &[StagedSetting]) {
        if written.is_empty() {
            return;
        }
        self.items().settings.retain(|item| !written.contains(item));
    }
}

/// Persistence of offchain content. Futures are not `Send`, as for
/// [`crate::walytis::store::BlockStore`].
#[allow(async_fn_in_trait)]
pub trait ContentStore {
    /// Keeps a content's segment tree (its leaves, in order). Putting it again is a no-op;
    /// nothing is kept for an erased content.
    async fn put_tree(&self, root: &ContentRoot, leaves: &[[u8; 32]]) -> Result<(), StoreError>;
    /// A content's segment tree, if kept.
    async fn tree(&self, root: &ContentRoot) -> Result<Option<Vec<[u8; 32]>>, StoreError>;
    /// Keeps one sealed segment; returns whether it kept it (not for an erased content).
    async fn put_segment(
        &self,
        root: &ContentRoot,
        index: u32,
        sealed: &[u8],
    ) -> Result<bool, StoreError>;
    /// Keeps sealed segments (`(index, sealed)`) in one transaction; returns whether it kept
    /// them (not for an erased content). The default puts them one by one.
    async fn put_segments(
        &self,
        root: &ContentRoot,
        segments: &[(u32, &[u8])],
    ) -> Result<bool, StoreError> {
        for (index, sealed) in segments {
            if !self.put_segment(root, *index, sealed).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }
    /// Keeps a content of one segment — its tree's leaves and its sealed segment 0 — in one
    /// transaction: the write on the path of a text message (see
    /// [`crate::offchain::MAX_INLINE_LEN`]). Returns whether it kept it (not for an erased
    /// content).
    async fn put_single_segment(
        &self,
        root: &ContentRoot,
        leaves: &[[u8; 32]],
        sealed: &[u8],
    ) -> Result<bool, StoreError>;
    /// Where content staged by [`ContentStore::stage_single_segment`] waits.
    fn staging(&self) -> &Staging;
    /// Stages a content of one segment to be kept in the same transaction as this store's
    /// next block commit (from any handle on it): the block that carries a text and the
    /// text land together, in one write — the path of a message, where each transaction is
    /// felt. Content already erased is not kept then either. [`ContentStore::flush_staged`]
    /// writes what no commit took.
    fn stage_single_segment(&self, root: &ContentRoot, leaves: &[[u8; 32]], sealed: &[u8]) {
        self.staging().stage(StagedSegment {
            root: *root,
            leaves: leaves.to_vec(),
            sealed: sealed.to_vec(),
        });
    }
    /// Writes the staged contents no block commit took, each in its own transaction, then
    /// the staged settings.
    async fn flush_staged(&self) -> Result<(), StoreError>
    where
        Self: BlockStore,
    {
        let staged = self.staging().snapshot();
        for item in &staged {
            self.put_single_segment(&item.root, &item.leaves, &item.sealed)
                .await?;
        }
        self.staging().written(&staged);
        let settings = self.staging().settings();
        for (key, value) in &settings {
            self.put_setting(key, value).await?;
        }
        self.staging().settings_written(&settings);
        Ok(())
    }
    /// One sealed segment, if kept.
    async fn segment(&self, root: &ContentRoot, index: u32) -> Result<Option<Vec<u8>>, StoreError>;
    /// A segment for a peer: never one of an erased content. The default reads twice;
    /// stores where each read is a round trip read both at once.
    async fn segment_to_serve(&self, root: &ContentRoot, index: u32) -> Result<Served, StoreError> {
        if self.is_erased(root).await? {
            return Ok(Served::Erased);
        }
        Ok(match self.segment(root, index).await? {
            Some(sealed) => Served::Segment(sealed),
            None => Served::NotHeld,
        })
    }
    /// The indexes of the segments kept, ascending: where a transfer resumes.
    async fn held(&self, root: &ContentRoot) -> Result<Vec<u32>, StoreError>;
    /// How many sealed segments the store keeps, of every content: what a member's quota
    /// counts, each as a full segment (see [`crate::net::Limits::content_store_bytes`]).
    /// Cheap in every store (no segment is read).
    async fn segment_count(&self) -> Result<u64, StoreError>;
    /// Drops a content's tree and segments for good and remembers that it was erased.
    async fn erase(&self, root: &ContentRoot) -> Result<(), StoreError>;
    /// Whether the content was erased.
    async fn is_erased(&self, root: &ContentRoot) -> Result<bool, StoreError>;
}

/// Key of a segment in stores with one ordered key space: root, then the big-endian index,
/// so a content's segments are one range in order.
pub fn segment_key(root: &ContentRoot, index: u32) -> [u8; 36] {
    let mut key = [0u8; 36];
    key[..32].copy_from_slice(root);
    key[32..].copy_from_slice(&index.to_be_bytes());
    key
}

/// The [`segment_key`] of each of `segments` (`(index, sealed)`), in order.
pub fn segment_keys(root: &ContentRoot, segments: &[(u32, &[u8])]) -> Vec<[u8; 36]> {
    segments
        .iter()
        .map(|(index, _)| segment_key(root, *index))
        .collect()
}

/// The index of a segment from its [`segment_key`]; a key of another length is a damaged
/// record.
pub fn segment_index(key: &[u8]) -> Result<u32, StoreError> {
    <[u8; 36]>::try_from(key)
        .map(|key| u32::from_be_bytes([key[32], key[33], key[34], key[35]]))
        .map_err(|_| StoreError::Corrupt("a segment key of the wrong length".into()))
}

/// A content root as logs and JavaScript show it: lowercase hex.
pub fn root_hex(root: &ContentRoot) -> String {
    root.iter().map(|b| format!("{b:02x}")).collect()
}

/// Leaves as stored and sent: their 32-byte hashes one after the other.
pub fn encode_leaves(leaves: &[[u8; 32]]) -> Vec<u8> {
    leaves.concat()
}

/// [`encode_leaves`]'s bytes back, `None` if their length is not a multiple of 32.
pub fn leaves_of(bytes: &[u8]) -> Option<Vec<[u8; 32]>> {
    if !bytes.len().is_multiple_of(32) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(32)
            .map(|leaf| {
                let mut out = [0u8; 32];
                out.copy_from_slice(leaf);
                out
            })
            .collect(),
    )
}

/// [`leaves_of`] for a stored tree: a bad length is a damaged record.
pub fn decode_leaves(bytes: &[u8]) -> Result<Vec<[u8; 32]>, StoreError> {
    leaves_of(bytes).ok_or_else(|| {
        StoreError::Corrupt("a segment tree whose length is not a multiple of 32".into())
    })
}
