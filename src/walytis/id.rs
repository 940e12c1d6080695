//! Content addresses: [`BlockId`] is a CIDv1 (dag-cbor, sha2-256) of a block's bytes.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

use super::block::BlockError;
use crate::cbor::{Reader, Writer};

/// CID version 1.
const CID_VERSION: u8 = 0x01;
/// Multicodec of DAG-CBOR.
const DAG_CBOR: u8 = 0x71;
/// Multihash code of SHA2-256.
const SHA2_256: u8 = 0x12;
/// Length of a SHA2-256 digest.
const DIGEST_LEN: u8 = 32;
/// The four-byte prefix every [`BlockId`] starts with.
const PREFIX: [u8; 4] = [CID_VERSION, DAG_CBOR, SHA2_256, DIGEST_LEN];

/// Number of bytes in the binary form of a [`BlockId`].
pub const BLOCK_ID_LEN: usize = 36;

/// Why a string or byte sequence is not a [`BlockId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// The binary form has the wrong length.
    #[error("a block ID is {BLOCK_ID_LEN} bytes, got {0}")]
    Length(usize),
    /// The CID is not v1 / dag-cbor / sha2-256.
    #[error("not a CIDv1 dag-cbor sha2-256 (prefix {0:02x?})")]
    Prefix([u8; 4]),
    /// The text form does not use the base32 lower-case multibase (`b…`).
    #[error("a block ID is written in base32 multibase starting with 'b'")]
    Multibase,
    /// A character outside the base32 alphabet, or bits left over.
    #[error("invalid base32 in block ID")]
    Base32,
}

/// The content address of a block: CIDv1, codec dag-cbor, hash sha2-256.
///
/// Ordered by its binary form, which is the tie-breaker of the chain order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlockId([u8; BLOCK_ID_LEN]);

impl BlockId {
    /// The smallest ID in the order of IDs (not the ID of any real block).
    pub const MIN: BlockId = BlockId([0; BLOCK_ID_LEN]);

    /// The ID of `bytes`, the canonical encoding of a block.
    pub fn of(bytes: &[u8]) -> Self {
        let digest = Sha256::digest(bytes);
        let mut id = [0u8; BLOCK_ID_LEN];
        id[..4].copy_from_slice(&PREFIX);
        id[4..].copy_from_slice(&digest);
        BlockId(id)
    }

    /// Parses the binary CID form.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, IdError> {
        let id: [u8; BLOCK_ID_LEN] = bytes.try_into().map_err(|_| IdError::Length(bytes.len()))?;
        let prefix = [id[0], id[1], id[2], id[3]];
        if prefix != PREFIX {
            return Err(IdError::Prefix(prefix));
        }
        Ok(BlockId(id))
    }

    /// The binary CID form.
    pub fn as_bytes(&self) -> &[u8; BLOCK_ID_LEN] {
        &self.0
    }

    /// The SHA2-256 digest of the block's bytes.
    pub fn digest(&self) -> &[u8] {
        &self.0[4..]
    }
}

const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

impl fmt::Display for BlockId {
    /// Multibase base32 lower case, as IPFS tools print CIDv1.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::with_capacity(1 + (BLOCK_ID_LEN * 8).div_ceil(5));
        out.push('b');
        let (mut buffer, mut bits) = (0u32, 0u32);
        for &byte in &self.0 {
            buffer = (buffer << 8) | u32::from(byte);
            bits += 8;
            while bits >= 5 {
                bits -= 5;
                out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
            }
        }
        if bits > 0 {
            out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
        }
        f.write_str(&out)
    }
}

impl fmt::Debug for BlockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlockId({self})")
    }
}

impl FromStr for BlockId {
    type Err = IdError;

    fn from_str(text: &str) -> Result<Self, IdError> {
        let body = text.strip_prefix('b').ok_or(IdError::Multibase)?;
        let mut bytes = Vec::with_capacity(BLOCK_ID_LEN);
        let (mut buffer, mut bits) = (0u32, 0u32);
        for c in body.bytes() {
            let value = ALPHABET
                .iter()
                .position(|&a| a == c)
                .ok_or(IdError::Base32)? as u32;
            buffer = (buffer << 5) | value;
            bits += 5;
            if bits >= 8 {
                bits -= 8;
                bytes.push((buffer >> bits) as u8);
            }
        }
        // Leftover bits must be padding zeros, or the text has a second spelling.
        if bits >= 5 || buffer & ((1 << bits) - 1) != 0 {
            return Err(IdError::Base32);
        }
        BlockId::from_bytes(&bytes)
    }
}

/// Reads a DAG-CBOR link that must name a block (the codec reads the CID, this checks it).
pub(crate) trait ReadLink {
    /// The block ID the next item links to.
    fn link(&mut self) -> Result<BlockId, BlockError>;
}

impl ReadLink for Reader<'_> {
    fn link(&mut self) -> Result<BlockId, BlockError> {
        let at = self.position();
        BlockId::from_bytes(self.cid()?).map_err(|source| BlockError::InvalidLink { at, source })
    }
}

/// Writes a block ID as a DAG-CBOR link.
pub(crate) trait WriteLink {
    /// Appends the link to `id`.
    fn link(&mut self, id: &BlockId);
}

impl WriteLink for Writer {
    fn link(&mut self, id: &BlockId) {
        self.cid(id.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trip_and_known_answer() {
        let id = BlockId::of(b"");
        // sha2-256 of the empty string, as a CIDv1 dag-cbor (checked with `ipfs cid format`).
        assert_eq!(
            id.to_string(),
            "bafyreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
        );
        assert_eq!(id.to_string().parse::<BlockId>(), Ok(id));
    }

    #[test]
    fn rejects_bad_text() {
        assert_eq!("zabc".parse::<BlockId>(), Err(IdError::Multibase));
        assert_eq!("b!!!".parse::<BlockId>(), Err(IdError::Base32));
        assert_eq!("baaaa".parse::<BlockId>(), Err(IdError::Length(2)));
        let mut wrong = *BlockId::of(b"x").as_bytes();
        wrong[1] = 0x55;
        assert_eq!(
            BlockId::from_bytes(&wrong),
            Err(IdError::Prefix([1, 0x55, 0x12, 0x20]))
        );
    }
}
