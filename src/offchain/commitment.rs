//! What a private block commits to, and the tree that lets any segment be checked alone.
//!
//! The ciphertext is cut into segments; each segment's *leaf* is
//! `SHA-256(0x00 ‖ index ‖ segment)`, and the *root* is the Merkle tree over the leaves
//! (`SHA-256(0x01 ‖ left ‖ right)`, an odd node carried up unchanged). The commitment holds
//! the root; a replica fetching the content gets the leaves first (32 bytes a segment: 25 KB
//! for 50 MiB), checks them against the root once, and then checks each segment against its
//! leaf the moment it arrives — so a peer serving a wrong byte is caught at that segment, and
//! a transfer resumes from the segments already verified. The index in each leaf keeps
//! segments from being reordered.
//!
//! After the segments' leaves comes one more: the content's *erase check*,
//! `SHA-256(0x02 ‖ secret)`, where the secret derives from the content key (see
//! [`super::stream::erase_secret`]). So the root names it too: whoever holds the tree — a
//! relay that can read nothing — can check an erase request carrying the secret, and only
//! someone who can open the content (a member) can make one.

use sha2::{Digest, Sha256};

use super::store::ContentRoot;
use super::{
    segments_of, OffchainError, MAX_CONTENT_LEN, MAX_MEDIA_TYPE_LEN, SEGMENT_LEN, TAG_LEN,
};
use crate::cbor::{Reader, Writer};
use crate::identity::EpochId;

/// Bytes of a commitment's nonce.
pub const CONTENT_NONCE_LEN: usize = 32;

/// What a private block commits to (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commitment {
    /// The root of the tree of the ciphertext's segment hashes.
    pub root: [u8; 32],
    /// The plaintext's length in bytes.
    pub size: u64,
    /// The epoch whose key the content key derives from.
    pub epoch: EpochId,
    /// Random, chosen by the writer: the content key derives from it, so no two contents
    /// share a key.
    pub nonce: [u8; CONTENT_NONCE_LEN],
    /// The content's media type (`text/plain`, `image/png`, …), as the writer says.
    pub media_type: String,
}

/// What a content is to someone who cannot read it — its root and size: enough to fetch,
/// verify and keep its ciphertext (a relay's mailbox knows no more).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContentShape {
    /// The root of the tree of the ciphertext's segment hashes.
    pub root: [u8; 32],
    /// The plaintext's length in bytes.
    pub size: u64,
}

impl ContentShape {
    /// How many segments the content has.
    pub fn segments(&self) -> u32 {
        u32::try_from(segments_of(self.size)).unwrap_or(u32::MAX)
    }
}

impl Commitment {
    /// How many segments the content has.
    pub fn segments(&self) -> u32 {
        self.shape().segments()
    }

    /// Its root and size.
    pub fn shape(&self) -> ContentShape {
        ContentShape {
            root: self.root,
            size: self.size,
        }
    }

    /// Canonical CBOR: `[root, size, epoch, nonce, media type]`.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(128 + self.media_type.len());
        w.array(5);
        w.bytes(&self.root);
        w.uint(self.size);
        w.bytes(&self.epoch);
        w.bytes(&self.nonce);
        w.text(&self.media_type);
        w.out
    }

    /// Parses [`Commitment::encode`]'s bytes; anything else, or content over
    /// [`MAX_CONTENT_LEN`], is a typed error.
    pub fn decode(bytes: &[u8]) -> Result<Self, OffchainError> {
        let mut r = Reader::new(bytes);
        if r.array()? != 5 {
            return Err(OffchainError::Malformed("not a commitment".into()));
        }
        let root = fixed(r.bytes()?)?;
        let size = r.uint()?;
        let epoch = fixed(r.bytes()?)?;
        let nonce = fixed(r.bytes()?)?;
        let media_type = r.text()?.to_owned();
        if !r.is_empty() {
            return Err(OffchainError::Malformed("trailing bytes".into()));
        }
        if size > MAX_CONTENT_LEN {
            return Err(OffchainError::TooLarge {
                size,
                limit: MAX_CONTENT_LEN,
            });
        }
        if media_type.len() > MAX_MEDIA_TYPE_LEN {
            return Err(OffchainError::Malformed("media type too long".into()));
        }
        Ok(Commitment {
            root,
            size,
            epoch,
            nonce,
            media_type,
        })
    }
}

fn fixed<const N: usize>(bytes: &[u8]) -> Result<[u8; N], OffchainError> {
    bytes
        .try_into()
        .map_err(|_| OffchainError::Malformed(format!("expected {N} bytes")))
}

/// The leaf of segment `index`: what that segment must hash to.
pub fn leaf(index: u32, segment: &[u8]) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update([0x00]);
    hash.update(index.to_be_bytes());
    hash.update(segment);
    hash.finalize().into()
}

/// The root of the tree over `leaves` (see the module docs).
pub fn root(leaves: &[[u8; 32]]) -> [u8; 32] {
    let mut level: Vec<[u8; 32]> = leaves.to_vec();
    if level.is_empty() {
        return leaf(0, &[]);
    }
    while level.len() > 1 {
        let mut next = Vec::with_capacity(level.len().div_ceil(2));
        for pair in level.chunks(2) {
            next.push(match pair {
                [left, right] => {
                    let mut hash = Sha256::new();
                    hash.update([0x01]);
                    hash.update(left);
                    hash.update(right);
                    hash.finalize().into()
                }
                // An odd node is carried up unchanged.
                _ => pair[0],
            });
        }
        level = next;
    }
    level[0]
}

/// A content of one segment as it travels inline with its block (see `crate::net`): the
/// sealed segment and the content's erase check, which name it together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineContent {
    /// The only segment, sealed.
    pub sealed: Vec<u8>,
    /// The erase check, the tree's last leaf.
    pub erase_check: [u8; 32],
}

impl InlineContent {
    /// Its root and the leaves of its tree ([`single_segment`]).
    pub fn named(&self) -> Option<(ContentRoot, [[u8; 32]; 2])> {
        single_segment(&self.sealed, &self.erase_check)
    }
}

/// A content's erase check: the last leaf of its tree (see the module docs).
pub fn erase_check(secret: &[u8; 32]) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update([0x02]);
    hash.update(secret);
    hash.finalize().into()
}

/// The root and the leaves of a content of one segment, from its sealed bytes and its erase
/// check alone: how a replica names and keeps content pushed inline with its block, before it
/// can read the commitment. `None` if the bytes are too long to be one segment.
pub fn single_segment(sealed: &[u8], check: &[u8; 32]) -> Option<(ContentRoot, [[u8; 32]; 2])> {
    if sealed.len() > SEGMENT_LEN + TAG_LEN {
        return None;
    }
    let leaves = [leaf(0, sealed), *check];
    Some((root(&leaves), leaves))
}

/// The segment hashes of one content, checked against its commitment: what a replica needs
/// to verify each segment alone, and the content's erase check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentTree {
    /// One leaf a segment, then the erase check.
    leaves: Vec<[u8; 32]>,
}

impl SegmentTree {
    /// The tree of `leaves`, if they are the commitment's: one a segment and the erase
    /// check, making its root.
    pub fn verified(commitment: &Commitment, leaves: Vec<[u8; 32]>) -> Result<Self, OffchainError> {
        Self::verified_shape(&commitment.shape(), leaves)
    }

    /// [`SegmentTree::verified`] against a content's shape alone.
    pub fn verified_shape(
        shape: &ContentShape,
        leaves: Vec<[u8; 32]>,
    ) -> Result<Self, OffchainError> {
        if leaves.len() != shape.segments() as usize + 1 || root(&leaves) != shape.root {
            return Err(OffchainError::TreeMismatch);
        }
        Ok(SegmentTree { leaves })
    }

    /// Checks sealed segment `index` against its leaf.
    pub fn check(&self, index: u32, segment: &[u8]) -> Result<(), OffchainError> {
        let segments = self.segments();
        let expected = self
            .leaves
            .get(index as usize)
            .filter(|_| index < segments)
            .ok_or(OffchainError::NoSuchSegment { index, segments })?;
        if leaf(index, segment) != *expected {
            return Err(OffchainError::SegmentMismatch { index });
        }
        Ok(())
    }

    /// The leaves (the erase check last), to keep and to serve to a peer that fetches the
    /// content.
    pub fn leaves(&self) -> &[[u8; 32]] {
        &self.leaves
    }

    /// How many segments.
    pub fn segments(&self) -> u32 {
        self.leaves.len().saturating_sub(1) as u32
    }

    /// Whether `secret` is the content's erase secret.
    pub fn permits_erasure(&self, secret: &[u8; 32]) -> bool {
        self.leaves.last() == Some(&erase_check(secret))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn roots_bind_every_leaf_and_its_place() {
        let leaves: Vec<[u8; 32]> = (0..5u32).map(|i| leaf(i, &[i as u8; 10])).collect();
        let r = root(&leaves);
        for i in 0..leaves.len() {
            let mut changed = leaves.clone();
            changed[i][0] ^= 1;
            assert_ne!(root(&changed), r);
        }
        let mut swapped = leaves.clone();
        swapped.swap(1, 2);
        assert_ne!(root(&swapped), r);
        assert_ne!(root(&leaves[..4]), r, "dropping a leaf changes the root");
        // A segment moved to another index hashes to another leaf.
        assert_ne!(leaf(0, b"x"), leaf(1, b"x"));
    }

    #[test]
    fn commitments_round_trip_and_refuse_anything_else() {
        let commitment = Commitment {
            root: [1; 32],
            size: 70_000,
            epoch: [2; 16],
            nonce: [3; 32],
            media_type: "image/png".into(),
        };
        assert_eq!(commitment.segments(), 2);
        let bytes = commitment.encode();
        assert_eq!(Commitment::decode(&bytes).unwrap(), commitment);
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(Commitment::decode(&trailing).is_err());
        assert!(Commitment::decode(&bytes[..bytes.len() - 1]).is_err());
        let huge = Commitment {
            size: MAX_CONTENT_LEN + 1,
            ..commitment
        };
        assert!(matches!(
            Commitment::decode(&huge.encode()),
            Err(OffchainError::TooLarge { .. })
        ));
    }
}
