//! Offchain content: private content kept out of the chain.
//!
//! A *private block* is a block of a chain bound to an identity whose body carries a
//! [`Commitment`] to its content, never the content: the Merkle root of the ciphertext's
//! segments, the plaintext length, the epoch and a random nonce, the media type. The content
//! itself is sealed in STREAM segments and lives in a content store beside the block store,
//! shared only with the identity's members; anyone who holds a segment and the commitment
//! can check that segment on its own, so content can be fetched from any peer, segment by
//! segment, and each is verified as it arrives.
//!
//! Sans-IO, like the layers below:
//! - [`commitment`]: the commitment and the tree of segment hashes it is the root of
//!   (verified streaming: the leaf hashes are checked against the root once, then each
//!   segment against its leaf);
//! - [`stream`]: sealing and opening content in segments ([`ContentWriter`],
//!   [`ContentReader`]), never more than one segment in memory;
//! - [`store`]: the [`ContentStore`] port (adapters in `crate::store`: memory, redb,
//!   IndexedDB);
//! - [`transfer`]: fetching content from peers, sans-IO ([`Fetch`], [`serve`]): resumed from
//!   the verified segments held, every answer checked before it is kept.
//!
//! The libp2p shell carries [`transfer`] between peers (`crate::net`, `/endra/content/1`).
//! Content of one segment travels inline with its block ([`MAX_INLINE_LEN`], see
//! [`commitment::single_segment`]); larger content is pulled.

pub mod commitment;
pub mod store;
pub mod stream;
pub mod transfer;

pub use commitment::{Commitment, ContentShape, InlineContent, SegmentTree};
pub use store::{ContentRoot, ContentStore};
pub use stream::{erase_secret, ContentReader, ContentWriter};
pub use transfer::{
    erase_on_request, serve, ContentRequest, ContentResponse, ContentStatus, Fetch, TransferError,
};

use crate::cbor::CborError;
use crate::identity::KeyError;

/// Plaintext bytes per segment: 64 KiB, as age's STREAM. A sealed segment is 16 bytes more.
pub const SEGMENT_LEN: usize = 64 * 1024;
/// Content up to this many bytes — one segment — is pushed inline, in the gossip message of
/// its block, so that a text message still reaches its readers in one hop.
pub const MAX_INLINE_LEN: u64 = SEGMENT_LEN as u64;
/// Bytes an AEAD tag adds to each segment.
pub const TAG_LEN: usize = 16;
/// The largest content a commitment may name by default: 100 MiB.
pub const MAX_CONTENT_LEN: u64 = 100 * 1024 * 1024;
/// Longest media type a commitment carries.
pub const MAX_MEDIA_TYPE_LEN: usize = 255;

/// Why content could not be sealed, verified or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OffchainError {
    /// A commitment's bytes do not parse.
    #[error("malformed commitment: {0}")]
    Malformed(String),
    /// Content larger than the limit.
    #[error("content of {size} bytes is over the limit of {limit}")]
    TooLarge {
        /// The content's size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The leaf hashes offered do not make the commitment's root, or are not as many as
    /// its segments.
    #[error("the segment hashes do not match the commitment")]
    TreeMismatch,
    /// A segment's bytes do not hash to its leaf: a peer served something else.
    #[error("segment {index} does not match the commitment")]
    SegmentMismatch {
        /// The segment.
        index: u32,
    },
    /// A segment index beyond the content.
    #[error("segment {index} is beyond the content's {segments} segments")]
    NoSuchSegment {
        /// The index asked for.
        index: u32,
        /// How many the content has.
        segments: u32,
    },
    /// A segment that verifies against the commitment does not open under the key: sealed
    /// for another chain or under another epoch's key.
    #[error("segment {index} does not open under this key")]
    WrongKey {
        /// The segment.
        index: u32,
    },
    /// Segments pushed out of shape: a segment after the last, one of the wrong size.
    #[error("content written out of shape: {0}")]
    Shape(&'static str),
    /// Key derivation failed.
    #[error(transparent)]
    Key(#[from] KeyError),
}

impl From<CborError> for OffchainError {
    fn from(e: CborError) -> Self {
        OffchainError::Malformed(e.to_string())
    }
}

/// How many segments content of `size` bytes has: at least one (empty content is one empty
/// last segment).
pub fn segments_of(size: u64) -> u64 {
    size.div_ceil(SEGMENT_LEN as u64).max(1)
}
