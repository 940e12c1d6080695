//! Fetching content from peers, sans-IO: what to ask for next, and how each answer is checked
//! before a byte of it is kept.
//!
//! A replica that holds a private block but not its content makes a [`Fetch`] from the
//! block's [`Commitment`] and its content store. The fetch resumes from what the store holds
//! (the verified tree, the verified segments), asks for the tree first and then each missing
//! segment ([`Fetch::next_request`]), and checks every answer against the commitment
//! ([`Fetch::accept`]): a peer that serves anything else is reported
//! ([`TransferError::Content`]) so the shell strikes it and asks another. The serving side is
//! [`serve`]: it answers from the store, and never for erased content.
//!
//! The shell (libp2p request-response, a test's direct calls) only moves [`ContentRequest`]s
//! and [`ContentResponse`]s.

use std::collections::{BTreeMap, BTreeSet};

use super::commitment::{erase_check, Commitment, ContentShape, SegmentTree};
use super::store::{encode_leaves, leaves_of, ContentRoot, ContentStore, Served};
use super::{OffchainError, MAX_CONTENT_LEN, SEGMENT_LEN, TAG_LEN};
use crate::cbor::{Reader, Writer};
use crate::walytis::store::StoreError;
use crate::walytis::{BlockId, ReadLink, WriteLink};

/// The most leaves a tree may have: that of the largest content allowed (one a segment, and
/// the erase check).
pub const MAX_LEAVES: usize = MAX_CONTENT_LEN.div_ceil(SEGMENT_LEN as u64) as usize + 1;

/// The largest encoded response: a full segment, or the largest tree, and a few bytes.
pub const MAX_RESPONSE_BYTES: usize = {
    let tree = MAX_LEAVES * 32 + 16;
    let segment = SEGMENT_LEN + TAG_LEN + 16;
    if tree > segment {
        tree
    } else {
        segment
    }
};

/// The largest encoded request.
pub const MAX_REQUEST_BYTES: usize = 128;

/// Why a transfer step failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransferError {
    /// The peer's answer does not verify against the commitment (or is not an answer to the
    /// question): strike the peer, ask another.
    #[error("the peer's answer does not verify: {0}")]
    Content(#[from] OffchainError),
    /// The content was erased here: it is neither fetched nor served again.
    #[error("the content was erased")]
    Erased,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a replica asks a peer for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContentRequest {
    /// The segment tree (leaf hashes) of a content.
    Tree(ContentRoot),
    /// One sealed segment.
    Segment(ContentRoot, u32),
    /// A writer offers a relay's mailbox a content of a chain the relay keeps: the relay
    /// answers [`ContentResponse::Accepted`] and fetches it from the chain's peers (the
    /// offerer first), or [`ContentResponse::Refused`].
    Offer(BlockId, ContentShape),
    /// A member asks a peer (a relay's mailbox, say) to drop a content for good, showing the
    /// content's erase secret (see [`super::commitment::erase_check`]): answered
    /// [`ContentResponse::Accepted`] once erased, [`ContentResponse::Refused`] for a wrong
    /// secret (see [`erase_on_request`]). The chain is the asker's word, for logs.
    Erase(BlockId, ContentRoot, [u8; 32]),
    /// A relay's mailbox tells the peer that offered it a content that it now holds all of
    /// it, every segment verified: the writer learns that its content no longer needs it
    /// online. Answered [`ContentResponse::Accepted`] by a node that takes it from one of
    /// its relays, [`ContentResponse::Refused`] otherwise. The chain is the content's.
    Kept(BlockId, ContentRoot),
}

impl ContentRequest {
    /// The content asked about.
    pub fn root(&self) -> &ContentRoot {
        match self {
            ContentRequest::Tree(root)
            | ContentRequest::Segment(root, _)
            | ContentRequest::Erase(_, root, _)
            | ContentRequest::Kept(_, root) => root,
            ContentRequest::Offer(_, shape) => &shape.root,
        }
    }

    /// The wire form: `[0, root]`, `[1, root, index]`, `[2, root, size, chain]` (an offer),
    /// `[3, root, secret, chain]` (an erase request) or `[4, root, chain]` (kept).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(MAX_REQUEST_BYTES);
        match self {
            ContentRequest::Tree(root) => {
                w.array(2);
                w.uint(0);
                w.bytes(root);
            }
            ContentRequest::Segment(root, index) => {
                w.array(3);
                w.uint(1);
                w.bytes(root);
                w.uint(u64::from(*index));
            }
            ContentRequest::Offer(chain, shape) => {
                w.array(4);
                w.uint(2);
                w.bytes(&shape.root);
                w.uint(shape.size);
                w.link(chain);
            }
            ContentRequest::Erase(chain, root, secret) => {
                w.array(4);
                w.uint(3);
                w.bytes(root);
                w.bytes(secret);
                w.link(chain);
            }
            ContentRequest::Kept(chain, root) => {
                w.array(3);
                w.uint(4);
                w.bytes(root);
                w.link(chain);
            }
        }
        w.out
    }

    /// Reads the wire form; anything else is an error.
    pub fn decode(bytes: &[u8]) -> Result<Self, OffchainError> {
        let mut r = Reader::new(bytes);
        let len = r.array()?;
        let kind = r.uint()?;
        let root: ContentRoot = r
            .bytes()?
            .try_into()
            .map_err(|_| OffchainError::Malformed("a content root of 32 bytes".into()))?;
        let request = match (kind, len) {
            (0, 2) => ContentRequest::Tree(root),
            (1, 3) => {
                let index = u32::try_from(r.uint()?)
                    .map_err(|_| OffchainError::Malformed("a segment index".into()))?;
                ContentRequest::Segment(root, index)
            }
            (2, 4) => {
                let size = r.uint()?;
                if size > MAX_CONTENT_LEN {
                    return Err(OffchainError::TooLarge {
                        size,
                        limit: MAX_CONTENT_LEN,
                    });
                }
                let chain = r
                    .link()
                    .map_err(|e| OffchainError::Malformed(e.to_string()))?;
                ContentRequest::Offer(chain, ContentShape { root, size })
            }
            (3, 4) => {
                let secret = r
                    .bytes()?
                    .try_into()
                    .map_err(|_| OffchainError::Malformed("an erase secret of 32 bytes".into()))?;
                let chain = r
                    .link()
                    .map_err(|e| OffchainError::Malformed(e.to_string()))?;
                ContentRequest::Erase(chain, root, secret)
            }
            (4, 3) => {
                let chain = r
                    .link()
                    .map_err(|e| OffchainError::Malformed(e.to_string()))?;
                ContentRequest::Kept(chain, root)
            }
            _ => {
                return Err(OffchainError::Malformed(
                    "an unknown content request".into(),
                ))
            }
        };
        r.finish()?;
        Ok(request)
    }
}

/// Answers an erase request (see [`ContentRequest::Erase`]) from `store`: a content whose tree
/// this store holds is erased when `secret` matches the tree's erase check — no key and no
/// plaintext needed, so a relay can do it — and never for a wrong secret. `NotHeld` for a
/// content whose tree is not here (there is nothing to check the secret against), `Erased`
/// for one erased before.
pub async fn erase_on_request<S: ContentStore>(
    root: &ContentRoot,
    secret: &[u8; 32],
    store: &S,
) -> Result<ContentResponse, StoreError> {
    let Some(leaves) = store.tree(root).await? else {
        return Ok(if store.is_erased(root).await? {
            ContentResponse::Erased
        } else {
            ContentResponse::NotHeld
        });
    };
    if leaves.last() != Some(&erase_check(secret)) {
        return Ok(ContentResponse::Refused);
    }
    store.erase(root).await?;
    Ok(ContentResponse::Accepted)
}

/// A peer's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContentResponse {
    /// The tree's leaves.
    Tree(Vec<[u8; 32]>),
    /// A sealed segment's bytes.
    Segment(Vec<u8>),
    /// The peer does not hold it (yet).
    NotHeld,
    /// The peer erased it and serves it no more.
    Erased,
    /// A relay took an offer: it fetches the content.
    Accepted,
    /// A relay refused an offer (no mailbox, a chain it does not keep, its quota).
    Refused,
}

impl ContentResponse {
    /// The wire form: `[0, leaves]`, `[1, segment]`, `[2]` (not held) or `[3]` (erased).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(match self {
            ContentResponse::Tree(leaves) => leaves.len() * 32 + 16,
            ContentResponse::Segment(bytes) => bytes.len() + 16,
            _ => 4,
        });
        match self {
            ContentResponse::Tree(leaves) => {
                w.array(2);
                w.uint(0);
                w.bytes(&encode_leaves(leaves));
            }
            ContentResponse::Segment(bytes) => {
                w.array(2);
                w.uint(1);
                w.bytes(bytes);
            }
            ContentResponse::NotHeld => {
                w.array(1);
                w.uint(2);
            }
            ContentResponse::Erased => {
                w.array(1);
                w.uint(3);
            }
            ContentResponse::Accepted => {
                w.array(1);
                w.uint(4);
            }
            ContentResponse::Refused => {
                w.array(1);
                w.uint(5);
            }
        }
        w.out
    }

    /// Reads the wire form; anything else (a tree over [`MAX_LEAVES`], a segment over a
    /// sealed segment's length) is an error.
    pub fn decode(bytes: &[u8]) -> Result<Self, OffchainError> {
        let mut r = Reader::new(bytes);
        let len = r.array()?;
        let response = match (r.uint()?, len) {
            (0, 2) => {
                let leaves = r.bytes()?;
                match leaves_of(leaves) {
                    Some(leaves) if leaves.len() <= MAX_LEAVES => ContentResponse::Tree(leaves),
                    _ => return Err(OffchainError::Malformed("a segment tree's leaves".into())),
                }
            }
            (1, 2) => {
                let segment = r.bytes()?;
                if segment.len() > SEGMENT_LEN + TAG_LEN {
                    return Err(OffchainError::Malformed("a segment over its length".into()));
                }
                ContentResponse::Segment(segment.to_vec())
            }
            (2, 1) => ContentResponse::NotHeld,
            (3, 1) => ContentResponse::Erased,
            (4, 1) => ContentResponse::Accepted,
            (5, 1) => ContentResponse::Refused,
            _ => {
                return Err(OffchainError::Malformed(
                    "an unknown content response".into(),
                ))
            }
        };
        r.finish()?;
        Ok(response)
    }
}

/// Where a content stands on this replica: what a UI shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentStatus {
    /// Every segment is held and verified.
    Available,
    /// Some are: `done` of `total` sealed bytes held.
    Fetching {
        /// Sealed bytes held.
        done: u64,
        /// Sealed bytes in all.
        total: u64,
    },
    /// Nothing held yet.
    Missing,
    /// Erased: gone for good.
    Erased,
}

/// The sealed length of segment `index` of a content of `shape`.
fn sealed_len(shape: &ContentShape, index: u32) -> u64 {
    let segments = shape.segments();
    let plain = if index + 1 == segments {
        shape.size - u64::from(segments - 1) * SEGMENT_LEN as u64
    } else {
        SEGMENT_LEN as u64
    };
    plain + TAG_LEN as u64
}

/// Sealed bytes of a whole content of `shape`.
pub fn sealed_size(shape: &ContentShape) -> u64 {
    shape.size + u64::from(shape.segments()) * TAG_LEN as u64
}

/// One content being fetched (or found complete) on this replica.
#[derive(Debug, Clone)]
pub struct Fetch {
    shape: ContentShape,
    tree: Option<SegmentTree>,
    held: BTreeSet<u32>,
    /// Segments verified and not stored yet (see [`Fetch::take`]).
    verified: BTreeMap<u32, Vec<u8>>,
    erased: bool,
    /// Sealed bytes accepted by this fetch (not those found in the store): what resuming
    /// saves is visible here.
    fetched: u64,
}

impl Fetch {
    /// The fetch of `commitment`'s content, resumed from what `store` holds.
    pub async fn resume<S: ContentStore>(
        commitment: Commitment,
        store: &S,
    ) -> Result<Self, TransferError> {
        Self::resume_shape(commitment.shape(), store).await
    }

    /// [`Fetch::resume`] knowing only the content's shape: how a relay's mailbox fetches
    /// what it cannot read.
    pub async fn resume_shape<S: ContentStore>(
        shape: ContentShape,
        store: &S,
    ) -> Result<Self, TransferError> {
        let root = shape.root;
        let erased = store.is_erased(&root).await?;
        let tree = match store.tree(&root).await? {
            // The store keeps only verified trees; a damaged one is fetched again.
            Some(leaves) => SegmentTree::verified_shape(&shape, leaves).ok(),
            None => None,
        };
        let held = match &tree {
            Some(_) => store.held(&root).await?.into_iter().collect(),
            None => BTreeSet::new(),
        };
        Ok(Fetch {
            shape,
            tree,
            held,
            verified: BTreeMap::new(),
            erased,
            fetched: 0,
        })
    }

    /// The content fetched.
    pub fn shape(&self) -> &ContentShape {
        &self.shape
    }

    /// The verified tree, once held.
    pub fn tree(&self) -> Option<&SegmentTree> {
        self.tree.as_ref()
    }

    /// Where the content stands.
    pub fn status(&self) -> ContentStatus {
        if self.erased {
            return ContentStatus::Erased;
        }
        let segments = self.shape.segments();
        if self.tree.is_some() && self.held.len() as u32 == segments {
            return ContentStatus::Available;
        }
        if self.held.is_empty() {
            return ContentStatus::Missing;
        }
        let done = self.held.iter().map(|&i| sealed_len(&self.shape, i)).sum();
        ContentStatus::Fetching {
            done,
            total: sealed_size(&self.shape),
        }
    }

    /// Sealed bytes this fetch accepted from peers.
    pub fn fetched_bytes(&self) -> u64 {
        self.fetched
    }

    /// The segments neither held nor verified yet, ascending (none while the tree is not
    /// held: ask for it first).
    pub fn missing(&self) -> impl Iterator<Item = u32> + '_ {
        let segments = if self.tree.is_some() && !self.erased {
            self.shape.segments()
        } else {
            0
        };
        (0..segments).filter(|i| !self.held.contains(i) && !self.verified.contains_key(i))
    }

    /// Segments this fetch has yet to store: what it will add to the store.
    pub fn segments_to_store(&self) -> u32 {
        if self.erased {
            return 0;
        }
        self.shape
            .segments()
            .saturating_sub(u32::try_from(self.held.len()).unwrap_or(u32::MAX))
    }

    /// Whether segment `index` is stored (by this fetch, or found in the store).
    pub fn is_held(&self, index: u32) -> bool {
        self.held.contains(&index)
    }

    /// Segments verified by [`Fetch::take`] and not stored yet.
    pub fn unstored(&self) -> usize {
        self.verified.len()
    }

    /// What to ask a peer for next, `None` once complete (or erased).
    pub fn next_request(&self) -> Option<ContentRequest> {
        if self.erased {
            return None;
        }
        let root = self.shape.root;
        if self.tree.is_none() {
            return Some(ContentRequest::Tree(root));
        }
        self.missing()
            .next()
            .map(|i| ContentRequest::Segment(root, i))
    }

    /// Checks a peer's answer to `request` and keeps it in `store` if it verifies. `Ok(false)`
    /// when the peer holds nothing to give (ask another); an error when the answer is false
    /// (strike the peer).
    pub async fn accept<S: ContentStore>(
        &mut self,
        request: &ContentRequest,
        response: ContentResponse,
        store: &S,
    ) -> Result<bool, TransferError> {
        let taken = self.take(request, response, store).await?;
        self.store_verified(store).await?;
        Ok(taken)
    }

    /// [`Fetch::accept`], except that a verified segment waits in memory for
    /// [`Fetch::store_verified`], which keeps several in one store transaction (one per
    /// segment costs a browser an IndexedDB commit each). Until then it is neither asked for
    /// again nor counted as held: a crash loses it, and it is fetched again.
    pub async fn take<S: ContentStore>(
        &mut self,
        request: &ContentRequest,
        response: ContentResponse,
        store: &S,
    ) -> Result<bool, TransferError> {
        let root = self.shape.root;
        match (request, response) {
            (_, ContentResponse::NotHeld | ContentResponse::Erased) => Ok(false),
            (ContentRequest::Tree(asked), ContentResponse::Tree(leaves)) if *asked == root => {
                let tree = SegmentTree::verified_shape(&self.shape, leaves)?;
                store.put_tree(&root, tree.leaves()).await?;
                if store.is_erased(&root).await? {
                    self.erased = true;
                    return Err(TransferError::Erased);
                }
                self.held = store.held(&root).await?.into_iter().collect();
                self.tree = Some(tree);
                Ok(true)
            }
            (ContentRequest::Segment(asked, index), ContentResponse::Segment(sealed))
                if *asked == root =>
            {
                let tree = self
                    .tree
                    .as_ref()
                    .ok_or(OffchainError::Shape("a segment before the tree"))?;
                tree.check(*index, &sealed)?;
                if !self.held.contains(index) {
                    self.verified.insert(*index, sealed);
                }
                Ok(true)
            }
            _ => Err(OffchainError::Shape("an answer to another question").into()),
        }
    }

    /// Keeps the verified segments [`Fetch::take`] holds in `store`, in one transaction.
    pub async fn store_verified<S: ContentStore>(
        &mut self,
        store: &S,
    ) -> Result<(), TransferError> {
        if self.verified.is_empty() {
            return Ok(());
        }
        let root = self.shape.root;
        let segments: Vec<(u32, &[u8])> = self
            .verified
            .iter()
            .map(|(index, sealed)| (*index, sealed.as_slice()))
            .collect();
        if !store.put_segments(&root, &segments).await? {
            self.erased = true;
            self.verified.clear();
            return Err(TransferError::Erased);
        }
        for (index, sealed) in std::mem::take(&mut self.verified) {
            if self.held.insert(index) {
                self.fetched += sealed.len() as u64;
            }
        }
        Ok(())
    }
}

/// Answers a peer's request from `store`: never for erased content.
pub async fn serve<S: ContentStore>(
    request: &ContentRequest,
    store: &S,
) -> Result<ContentResponse, TransferError> {
    Ok(match request {
        // The erasure and the segment read at once (see `ContentStore::segment_to_serve`).
        ContentRequest::Segment(root, index) => match store.segment_to_serve(root, *index).await? {
            Served::Segment(sealed) => ContentResponse::Segment(sealed),
            Served::NotHeld => ContentResponse::NotHeld,
            Served::Erased => ContentResponse::Erased,
        },
        ContentRequest::Tree(root) if store.is_erased(root).await? => ContentResponse::Erased,
        ContentRequest::Tree(root) => store
            .tree(root)
            .await?
            .map_or(ContentResponse::NotHeld, ContentResponse::Tree),
        // Whether to keep others' content is a node's policy (the relay's mailbox), not the
        // store's.
        // Nor whether to take erase requests (a relay's mailbox does: see
        // [`erase_on_request`]), nor whom to believe that a content is kept.
        ContentRequest::Offer(..) | ContentRequest::Erase(..) | ContentRequest::Kept(..) => {
            ContentResponse::Refused
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn requests_and_responses_round_trip_and_oversized_or_unknown_ones_are_refused() {
        let root = [9u8; 32];
        let offer = ContentRequest::Offer(
            BlockId::of(b"a chain"),
            ContentShape {
                root,
                size: MAX_CONTENT_LEN,
            },
        );
        for request in [
            ContentRequest::Tree(root),
            ContentRequest::Segment(root, 70_000),
            offer,
            ContentRequest::Erase(BlockId::of(b"a chain"), root, [7; 32]),
            ContentRequest::Kept(BlockId::of(b"a chain"), root),
        ] {
            let bytes = request.encode();
            assert!(bytes.len() <= MAX_REQUEST_BYTES);
            assert_eq!(ContentRequest::decode(&bytes), Ok(request));
        }
        for response in [
            ContentResponse::Tree(vec![[1; 32]; MAX_LEAVES]),
            ContentResponse::Segment(vec![2; SEGMENT_LEN + TAG_LEN]),
            ContentResponse::NotHeld,
            ContentResponse::Erased,
            ContentResponse::Accepted,
            ContentResponse::Refused,
        ] {
            let bytes = response.encode();
            assert!(bytes.len() <= MAX_RESPONSE_BYTES);
            assert_eq!(ContentResponse::decode(&bytes), Ok(response));
        }
        let too_big = [
            ContentResponse::Tree(vec![[1; 32]; MAX_LEAVES + 1]).encode(),
            ContentResponse::Segment(vec![2; SEGMENT_LEN + TAG_LEN + 1]).encode(),
        ];
        for bytes in too_big {
            assert!(ContentResponse::decode(&bytes).is_err());
        }
        let mut trailing = ContentRequest::Tree(root).encode();
        trailing.push(0);
        assert!(ContentRequest::decode(&trailing).is_err());
        assert!(ContentRequest::decode(b"junk").is_err());
        assert_eq!(
            crate::offchain::segments_of(MAX_CONTENT_LEN) + 1,
            MAX_LEAVES as u64,
            "a segment's leaf each, and the erase check"
        );
    }

    #[test]
    fn only_the_erase_secret_erases_and_nothing_is_served_after() {
        futures_executor::block_on(async {
            let store = crate::store::MemoryStore::new();
            let secret = [5u8; 32];
            let leaves = [
                super::super::commitment::leaf(0, b"sealed"),
                erase_check(&secret),
            ];
            let root = super::super::commitment::root(&leaves);
            assert!(store
                .put_single_segment(&root, &leaves, b"sealed")
                .await
                .unwrap());
            let wrong = erase_on_request(&root, &[6; 32], &store).await;
            assert_eq!(wrong.unwrap(), ContentResponse::Refused);
            // The erase check itself is public (it is a leaf): it is not the secret.
            let check = erase_on_request(&root, &erase_check(&secret), &store).await;
            assert_eq!(check.unwrap(), ContentResponse::Refused);
            assert!(store.segment(&root, 0).await.unwrap().is_some());
            // Serving is a store's answer; taking erase requests is a node's policy.
            let request = ContentRequest::Erase(BlockId::of(b"a chain"), root, secret);
            let served = serve(&request, &store).await.unwrap();
            assert_eq!(served, ContentResponse::Refused);
            assert!(store.segment(&root, 0).await.unwrap().is_some());
            let right = erase_on_request(&root, &secret, &store).await;
            assert_eq!(right.unwrap(), ContentResponse::Accepted);
            assert!(store.is_erased(&root).await.unwrap());
            let segment = serve(&ContentRequest::Segment(root, 0), &store).await;
            assert_eq!(segment.unwrap(), ContentResponse::Erased);
            let unknown = erase_on_request(&[1; 32], &secret, &store).await;
            assert_eq!(unknown.unwrap(), ContentResponse::NotHeld);
        });
    }
}
