//! Sealing and opening content in segments (age's STREAM construction): the content key is
//! derived from the epoch key, the chain and the commitment's nonce, so no two contents share
//! a key and content sealed for one chain opens in no other; each segment is sealed with
//! ChaCha20-Poly1305 under a nonce made of its index and a last-segment flag, so segments
//! cannot be reordered, dropped from the end or repeated; the associated data binds the chain
//! and the commitment's nonce once more. One segment is in memory at a time, whatever the
//! content's size.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use rand_core::CryptoRngCore;

use super::commitment::{erase_check, leaf, root, Commitment, SegmentTree, CONTENT_NONCE_LEN};
use super::{segments_of, OffchainError, MAX_CONTENT_LEN, MAX_MEDIA_TYPE_LEN, SEGMENT_LEN};
use crate::identity::{EpochId, EpochKey};
use crate::walytis::BlockId;

const KEY_CONTEXT: &[u8] = b"endra/offchain/content/v1\0";
const ERASE_CONTEXT: &[u8] = b"endra/offchain/erase/v1\0";
const AAD_CONTEXT: &[u8] = b"endra/offchain/segment/v1\0";

/// The cipher of one content (see the module docs).
fn cipher(
    epoch_key: &EpochKey,
    chain: &BlockId,
    nonce: &[u8; CONTENT_NONCE_LEN],
) -> Result<ChaCha20Poly1305, OffchainError> {
    let context = [KEY_CONTEXT, chain.as_bytes(), nonce.as_slice()].concat();
    let key = epoch_key.derive(&context)?;
    Ok(ChaCha20Poly1305::new(key.as_bytes().into()))
}

/// The erase secret of the content of `chain` sealed under `epoch_key` with `nonce`: whoever
/// can open the content can derive it, and showing it has any replica that holds the content's
/// tree drop the content (see [`super::commitment::erase_check`]).
pub fn erase_secret(
    epoch_key: &EpochKey,
    chain: &BlockId,
    nonce: &[u8; CONTENT_NONCE_LEN],
) -> Result<[u8; 32], OffchainError> {
    let context = [ERASE_CONTEXT, chain.as_bytes(), nonce.as_slice()].concat();
    Ok(*epoch_key.derive(&context)?.as_bytes())
}

/// Segment `index`'s nonce: an 11-byte big-endian counter, then the last-segment flag.
fn segment_nonce(index: u32, last: bool) -> Nonce {
    let mut nonce = [0u8; 12];
    nonce[7..11].copy_from_slice(&index.to_be_bytes());
    nonce[11] = u8::from(last);
    nonce.into()
}

fn aad(chain: &BlockId, nonce: &[u8; CONTENT_NONCE_LEN]) -> Vec<u8> {
    [AAD_CONTEXT, chain.as_bytes(), nonce.as_slice()].concat()
}

/// Seals one content, segment by segment, for a chain bound to an identity.
pub struct ContentWriter {
    cipher: ChaCha20Poly1305,
    aad: Vec<u8>,
    epoch: EpochId,
    nonce: [u8; CONTENT_NONCE_LEN],
    media_type: String,
    size: u64,
    leaves: Vec<[u8; 32]>,
    erase_check: [u8; 32],
    done: bool,
}

impl std::fmt::Debug for ContentWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContentWriter")
            .field("media_type", &self.media_type)
            .field("size", &self.size)
            .field("segments", &self.leaves.len())
            .finish()
    }
}

impl ContentWriter {
    /// A writer for content of `chain`, under `epoch`'s key, with a fresh nonce.
    pub fn new(
        epoch_key: &EpochKey,
        epoch: EpochId,
        chain: &BlockId,
        media_type: &str,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Self, OffchainError> {
        if media_type.len() > MAX_MEDIA_TYPE_LEN {
            return Err(OffchainError::Shape("media type too long"));
        }
        let mut nonce = [0u8; CONTENT_NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        Ok(ContentWriter {
            erase_check: erase_check(&erase_secret(epoch_key, chain, &nonce)?),
            cipher: cipher(epoch_key, chain, &nonce)?,
            aad: aad(chain, &nonce),
            epoch,
            nonce,
            media_type: media_type.to_owned(),
            size: 0,
            leaves: Vec::new(),
            done: false,
        })
    }

    /// Seals the next segment: exactly [`SEGMENT_LEN`] bytes of plaintext, or at most that
    /// many for the `last` one (empty content is one empty last segment).
    pub fn seal(&mut self, plaintext: &[u8], last: bool) -> Result<Vec<u8>, OffchainError> {
        if self.done {
            return Err(OffchainError::Shape("a segment after the last"));
        }
        if plaintext.len() > SEGMENT_LEN || (!last && plaintext.len() != SEGMENT_LEN) {
            return Err(OffchainError::Shape(
                "segments are 64 KiB, the last at most that",
            ));
        }
        let size = self.size + plaintext.len() as u64;
        if size > MAX_CONTENT_LEN {
            return Err(OffchainError::TooLarge {
                size,
                limit: MAX_CONTENT_LEN,
            });
        }
        let index = u32::try_from(self.leaves.len())
            .map_err(|_| OffchainError::Shape("too many segments"))?;
        // Only empty content has an empty segment: content of whole segments ends on a full
        // one, so that every content has one shape.
        if last && plaintext.is_empty() && index > 0 {
            return Err(OffchainError::Shape("an empty last segment after others"));
        }
        let sealed = self
            .cipher
            .encrypt(
                &segment_nonce(index, last),
                Payload {
                    msg: plaintext,
                    aad: &self.aad,
                },
            )
            .map_err(|_| OffchainError::Shape("a segment the cipher refuses"))?;
        self.leaves.push(leaf(index, &sealed));
        self.size = size;
        self.done = last;
        Ok(sealed)
    }

    /// A writer that seals the same content again to the same bytes (same key, same nonce):
    /// the second pass over content read twice, once for its root and once to store it under
    /// that root, so that it is never held whole. The first pass's ciphertext must not leave
    /// the device: were the two passes given different plaintexts, the two ciphertexts under
    /// one nonce would reveal how they differ (the second pass is checked against the first
    /// pass's tree, segment by segment, before anything is kept).
    pub fn again(&self) -> ContentWriter {
        ContentWriter {
            cipher: self.cipher.clone(),
            aad: self.aad.clone(),
            epoch: self.epoch,
            nonce: self.nonce,
            media_type: self.media_type.clone(),
            size: 0,
            leaves: Vec::new(),
            erase_check: self.erase_check,
            done: false,
        }
    }

    /// After the last segment: the commitment a private block carries, and the segment tree
    /// to keep beside the content.
    pub fn finish(self) -> Result<(Commitment, SegmentTree), OffchainError> {
        if !self.done {
            return Err(OffchainError::Shape("no last segment"));
        }
        let mut leaves = self.leaves;
        leaves.push(self.erase_check);
        let commitment = Commitment {
            root: root(&leaves),
            size: self.size,
            epoch: self.epoch,
            nonce: self.nonce,
            media_type: self.media_type,
        };
        let tree = SegmentTree::verified(&commitment, leaves)?;
        Ok((commitment, tree))
    }

    /// Seals content held whole in memory: its commitment, tree and sealed segments.
    pub fn seal_all(
        epoch_key: &EpochKey,
        epoch: EpochId,
        chain: &BlockId,
        media_type: &str,
        content: &[u8],
        rng: &mut impl CryptoRngCore,
    ) -> Result<(Commitment, SegmentTree, Vec<Vec<u8>>), OffchainError> {
        let mut writer = Self::new(epoch_key, epoch, chain, media_type, rng)?;
        let count = segments_of(content.len() as u64) as usize;
        let mut sealed = Vec::with_capacity(count);
        for n in 0..count {
            let start = n * SEGMENT_LEN;
            let end = content.len().min(start + SEGMENT_LEN);
            sealed.push(writer.seal(&content[start..end], n + 1 == count)?);
        }
        let (commitment, tree) = writer.finish()?;
        Ok((commitment, tree, sealed))
    }
}

/// Checks and opens the segments of one content, each on its own as it arrives.
pub struct ContentReader {
    cipher: ChaCha20Poly1305,
    aad: Vec<u8>,
    commitment: Commitment,
    tree: SegmentTree,
}

impl std::fmt::Debug for ContentReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContentReader")
            .field("commitment", &self.commitment)
            .finish()
    }
}

impl ContentReader {
    /// A reader of the content `commitment` names, in `chain`, with `epoch_key` (the key of
    /// the commitment's epoch) and its verified segment tree.
    pub fn new(
        epoch_key: &EpochKey,
        chain: &BlockId,
        commitment: Commitment,
        tree: SegmentTree,
    ) -> Result<Self, OffchainError> {
        Ok(ContentReader {
            cipher: cipher(epoch_key, chain, &commitment.nonce)?,
            aad: aad(chain, &commitment.nonce),
            commitment,
            tree,
        })
    }

    /// The commitment read.
    pub fn commitment(&self) -> &Commitment {
        &self.commitment
    }

    /// Checks sealed segment `index` against the commitment (a peer that served anything
    /// else is caught here) and opens it: its plaintext, of the length its place calls for.
    pub fn open(&self, index: u32, sealed: &[u8]) -> Result<Vec<u8>, OffchainError> {
        self.tree.check(index, sealed)?;
        self.decrypt(index, sealed)
    }

    /// [`ContentReader::open`] for a segment read back from a content store, which holds
    /// only segments checked against their tree as they came in (fetched, inline and named
    /// by its own bytes, or sealed on this device): it is not hashed again. The tag, bound to
    /// this content, this index and whether it is the last, catches damage since; bytes that
    /// do not open are checked against the tree to say why (`SegmentMismatch` when they are
    /// not the segment the commitment names, `WrongKey` when they are).
    pub fn open_stored(&self, index: u32, sealed: &[u8]) -> Result<Vec<u8>, OffchainError> {
        self.decrypt(index, sealed).map_err(|error| match error {
            OffchainError::WrongKey { .. } => match self.tree.check(index, sealed) {
                Err(mismatch) => mismatch,
                Ok(()) => error,
            },
            other => other,
        })
    }

    fn decrypt(&self, index: u32, sealed: &[u8]) -> Result<Vec<u8>, OffchainError> {
        let segments = self.commitment.segments();
        if index >= segments {
            return Err(OffchainError::NoSuchSegment { index, segments });
        }
        let last = index + 1 == segments;
        let plaintext = self
            .cipher
            .decrypt(
                &segment_nonce(index, last),
                Payload {
                    msg: sealed,
                    aad: &self.aad,
                },
            )
            .map_err(|_| OffchainError::WrongKey { index })?;
        let expected = if last {
            self.commitment.size - u64::from(segments - 1) * SEGMENT_LEN as u64
        } else {
            SEGMENT_LEN as u64
        };
        if plaintext.len() as u64 != expected {
            return Err(OffchainError::SegmentMismatch { index });
        }
        Ok(plaintext)
    }
}
