//! The block model: encoding, signing, and the checks a block passes on its own.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use super::id::{BlockId, IdError};
use super::id::{ReadLink, WriteLink};
use crate::cbor::{CborError, Reader, Writer};

/// Largest inline body, in bytes. Larger content belongs off the chain (offchain layer).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Most topics a block may carry.
pub const MAX_TOPICS: usize = 16;
/// Longest topic, in bytes of UTF-8.
pub const MAX_TOPIC_BYTES: usize = 128;
/// Most parents a block may name. A writer facing more leaves merges them over several blocks.
pub const MAX_PARENTS: usize = 64;
/// Largest encoded block, in bytes: the body limit plus room for every other field at its limit.
pub const MAX_BLOCK_BYTES: usize = MAX_BODY_BYTES + 8 * 1024;

/// Multicodec prefix of an Ed25519 public key, so keys say which algorithm they are for.
const ED25519_PUB: [u8; 2] = [0xed, 0x01];
/// Domain separation: a block signature can never be mistaken for another signed message.
const SIGNING_CONTEXT: &[u8] = b"endra/walytis/block/v1\0";

/// Map keys of an encoded block, in canonical DAG-CBOR order (length, then bytes).
pub(crate) const FIELDS: [&str; 8] = [
    "sig", "body", "time", "chain", "author", "height", "topics", "parents",
];

/// Why a block was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BlockError {
    /// The encoded block is larger than [`MAX_BLOCK_BYTES`].
    #[error("block is {size} bytes, the limit is {MAX_BLOCK_BYTES}")]
    TooLarge {
        /// Size of the encoded block.
        size: usize,
    },
    /// The bytes are not the canonical CBOR of a block.
    #[error(transparent)]
    Cbor(#[from] CborError),
    /// A link is not a block ID.
    #[error("invalid link at byte {at}: {source}")]
    InvalidLink {
        /// Offset of the link.
        at: usize,
        /// What is wrong with it.
        source: IdError,
    },
    /// Bytes follow the block.
    #[error("{extra} bytes after the end of the block")]
    TrailingBytes {
        /// How many.
        extra: usize,
    },
    /// A field this version does not know.
    #[error("unknown field {name:?}")]
    UnknownField {
        /// The field's name (at most 64 characters of it).
        name: String,
    },
    /// A required field is absent.
    #[error("missing field {name:?}")]
    MissingField {
        /// The field's name.
        name: &'static str,
    },
    /// The author key is not an Ed25519 key or not a valid curve point.
    #[error("author key is not a valid Ed25519 public key")]
    InvalidAuthor,
    /// The signature is not 64 bytes.
    #[error("signature must be 64 bytes, got {len}")]
    SignatureLength {
        /// Length found.
        len: usize,
    },
    /// The signature does not verify under the author key.
    #[error("signature does not verify against the author key")]
    BadSignature,
    /// The body is larger than [`MAX_BODY_BYTES`].
    #[error("body is {size} bytes, the limit is {MAX_BODY_BYTES}")]
    BodyTooLarge {
        /// Size of the body.
        size: usize,
    },
    /// More than [`MAX_TOPICS`] topics.
    #[error("{count} topics, the limit is {MAX_TOPICS}")]
    TooManyTopics {
        /// Number of topics.
        count: usize,
    },
    /// A topic is the empty string.
    #[error("empty topic")]
    EmptyTopic,
    /// A topic is longer than [`MAX_TOPIC_BYTES`].
    #[error("topic of {size} bytes, the limit is {MAX_TOPIC_BYTES}")]
    TopicTooLong {
        /// Its length in bytes.
        size: usize,
    },
    /// Topics are not sorted or repeat.
    #[error("topics must be sorted and unique")]
    UnsortedTopics,
    /// More than [`MAX_PARENTS`] parents.
    #[error("{count} parents, the limit is {MAX_PARENTS}")]
    TooManyParents {
        /// Number of parents.
        count: usize,
    },
    /// The same parent appears twice.
    #[error("parent {0} appears twice")]
    DuplicateParent(BlockId),
    /// Parents are not in ascending ID order.
    #[error("parents are not sorted")]
    UnsortedParents,
    /// A non-genesis block without parents.
    #[error("a block other than the genesis must have parents")]
    NoParents,
    /// A genesis block (no chain field) that names parents.
    #[error("the genesis block cannot have parents")]
    GenesisWithParents,
    /// The height is not one more than the highest parent's.
    #[error("height is {actual}, parents imply {expected}")]
    HeightMismatch {
        /// Height implied by the parents.
        expected: u64,
        /// Height in the block.
        actual: u64,
    },
    /// The block belongs to another chain.
    #[error("block belongs to chain {actual:?}, not {expected}")]
    WrongChain {
        /// The chain it was offered to.
        expected: BlockId,
        /// The chain it names (`None` for a genesis block).
        actual: Option<BlockId>,
    },
    /// The bytes do not hash to the ID they were offered under.
    #[error("block bytes hash to {actual}, not the claimed {expected}")]
    IdMismatch {
        /// The claimed ID.
        expected: BlockId,
        /// The ID of the bytes.
        actual: BlockId,
    },
}

/// The author of a block: an algorithm-tagged public key (today always Ed25519).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Author([u8; 32]);

impl Author {
    /// The author whose blocks `key` signs.
    pub fn of(key: &SigningKey) -> Self {
        Author(key.verifying_key().to_bytes())
    }

    /// The tagged key bytes as stored in blocks: multicodec `ed25519-pub` then the key.
    pub fn to_tagged_bytes(&self) -> [u8; 34] {
        let mut out = [0u8; 34];
        out[..2].copy_from_slice(&ED25519_PUB);
        out[2..].copy_from_slice(&self.0);
        out
    }

    /// Parses the tagged form written by [`Author::to_tagged_bytes`].
    pub fn from_tagged_bytes(bytes: &[u8]) -> Result<Self, BlockError> {
        match bytes.split_at_checked(2) {
            Some((tag, key)) if tag == ED25519_PUB => key
                .try_into()
                .map(Author)
                .map_err(|_| BlockError::InvalidAuthor),
            _ => Err(BlockError::InvalidAuthor),
        }
    }

    /// The raw Ed25519 public key.
    pub fn key_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for Author {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Author(")?;
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

/// The fields of a block before it is signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockDraft {
    /// The chain (ID of its genesis block); `None` makes this the genesis block.
    pub chain: Option<BlockId>,
    /// The current leaves the author knew; sorted and deduplicated by [`BlockDraft::sign`].
    pub parents: Vec<BlockId>,
    /// `1 + max(parent heights)`, 0 for the genesis.
    pub height: u64,
    /// Milliseconds since the Unix epoch as the author's clock said; never used for order.
    pub time: u64,
    /// Application-defined labels; sorted and deduplicated by [`BlockDraft::sign`].
    pub topics: Vec<String>,
    /// The content.
    pub body: Vec<u8>,
}

impl BlockDraft {
    /// Signs the draft with the author's device key and checks the result like a received
    /// block, so a local writer can never produce a block that peers reject.
    pub fn sign(mut self, key: &SigningKey) -> Result<Block, BlockError> {
        self.parents.sort_unstable();
        self.parents.dedup();
        self.topics.sort_unstable();
        self.topics.dedup();
        let author = Author::of(key);
        let unsigned = encode_unsigned(&self, &author);
        let sig = key.sign(&signing_message(&unsigned));
        // The signed map is the unsigned one with `sig` first: same entries, one more.
        let mut w = Writer::with_capacity(unsigned.len() + 72);
        w.map(FIELDS.len());
        w.text("sig");
        w.bytes(&sig.to_bytes());
        w.out.extend_from_slice(&unsigned[1..]);
        // Our own fresh signature needs no verifying; every other check still runs.
        Block::decode_stored(&w.out)
    }
}

/// Decompressed author keys: a chain has few authors and decompressing a point costs about
/// a fifth of a verification, so validation keeps the recent ones.
fn verifying_key(author: &Author) -> Result<VerifyingKey, BlockError> {
    use std::cell::RefCell;
    use std::collections::HashMap;
    const CACHED_KEYS: usize = 1024;
    thread_local! {
        static KEYS: RefCell<HashMap<[u8; 32], VerifyingKey>> = RefCell::new(HashMap::new());
    }
    KEYS.with(|keys| {
        if let Some(key) = keys.borrow().get(author.key_bytes()) {
            return Ok(*key);
        }
        let key =
            VerifyingKey::from_bytes(author.key_bytes()).map_err(|_| BlockError::InvalidAuthor)?;
        let mut keys = keys.borrow_mut();
        if keys.len() >= CACHED_KEYS {
            keys.clear();
        }
        keys.insert(*author.key_bytes(), key);
        Ok(key)
    })
}

/// Checks a block's signature. The unsigned encoding is the signed one minus its first entry
/// with a map head one smaller; both heads are one byte, so it is rebuilt without re-encoding.
fn verify_signature(
    author: &Author,
    sig: &[u8; 64],
    bytes: &[u8],
    after_sig: usize,
) -> Result<(), BlockError> {
    let key = verifying_key(author)?;
    let mut message = Vec::with_capacity(SIGNING_CONTEXT.len() + bytes.len() - after_sig + 1);
    message.extend_from_slice(SIGNING_CONTEXT);
    message.push(bytes[0] - 1);
    message.extend_from_slice(&bytes[after_sig..]);
    key.verify_strict(&message, &Signature::from_bytes(sig))
        .map_err(|_| BlockError::BadSignature)
}

fn signing_message(unsigned: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(SIGNING_CONTEXT.len() + unsigned.len());
    message.extend_from_slice(SIGNING_CONTEXT);
    message.extend_from_slice(unsigned);
    message
}

/// The canonical encoding of every field but `sig`; its first byte is the map head.
fn encode_unsigned(draft: &BlockDraft, author: &Author) -> Vec<u8> {
    let topics_len: usize = draft.topics.iter().map(|t| t.len() + 3).sum();
    let mut w =
        Writer::with_capacity(96 + draft.body.len() + draft.parents.len() * 40 + topics_len);
    w.map(FIELDS.len() - 1);
    w.text("body");
    w.bytes(&draft.body);
    w.text("time");
    w.uint(draft.time);
    w.text("chain");
    match &draft.chain {
        Some(chain) => w.link(chain),
        None => w.null(),
    }
    w.text("author");
    w.bytes(&author.to_tagged_bytes());
    w.text("height");
    w.uint(draft.height);
    w.text("topics");
    w.array(draft.topics.len());
    for topic in &draft.topics {
        w.text(topic);
    }
    w.text("parents");
    w.array(draft.parents.len());
    for parent in &draft.parents {
        w.link(parent);
    }
    w.out
}

/// A block whose encoding, limits and signature have been checked.
///
/// Only [`Block::decode`] and [`BlockDraft::sign`] make one, so holding a `Block` means
/// holding well-formed, correctly signed bytes. Whether it fits its chain (parents known,
/// height consistent) is checked when the chain accepts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    id: BlockId,
    bytes: Vec<u8>,
    chain: Option<BlockId>,
    parents: Vec<BlockId>,
    height: u64,
    author: Author,
    time: u64,
    topics: Vec<String>,
    body_range: std::ops::Range<usize>,
}

impl Block {
    /// Decodes and checks a block received from anywhere (network, disk, a caller).
    pub fn decode(bytes: &[u8]) -> Result<Block, BlockError> {
        Self::decode_checked(bytes, true, None)
    }

    /// [`Block::decode`] for bytes whose ID the caller has just computed.
    pub(crate) fn decode_hashed(bytes: &[u8], id: BlockId) -> Result<Block, BlockError> {
        Self::decode_checked(bytes, true, Some(id))
    }

    /// Decodes a block read back from the local store: every check but the signature, which
    /// was verified before the block was stored.
    pub(crate) fn decode_stored(bytes: &[u8]) -> Result<Block, BlockError> {
        Self::decode_checked(bytes, false, None)
    }

    /// [`Block::decode_stored`] for bytes whose ID the caller has just computed.
    pub(crate) fn decode_stored_hashed(bytes: &[u8], id: BlockId) -> Result<Block, BlockError> {
        Self::decode_checked(bytes, false, Some(id))
    }

    fn decode_checked(
        bytes: &[u8],
        verify: bool,
        id: Option<BlockId>,
    ) -> Result<Block, BlockError> {
        if bytes.len() > MAX_BLOCK_BYTES {
            return Err(BlockError::TooLarge { size: bytes.len() });
        }
        let mut r = Reader::new(bytes);
        let entries = r.map()?;
        let field = |r: &mut Reader<'_>, i: usize| -> Result<(), BlockError> {
            if i >= entries {
                return Err(BlockError::MissingField { name: FIELDS[i] });
            }
            read_key(r, i, entries)
        };
        field(&mut r, 0)?;
        let sig = r.bytes()?;
        let after_sig = bytes.len() - r.remaining();
        field(&mut r, 1)?;
        let body = r.bytes()?;
        let body_end = bytes.len() - r.remaining();
        let body_range = body_end - body.len()..body_end;
        field(&mut r, 2)?;
        let time = r.uint()?;
        field(&mut r, 3)?;
        let chain = if r.null() { None } else { Some(r.link()?) };
        field(&mut r, 4)?;
        let author = Author::from_tagged_bytes(r.bytes()?)?;
        field(&mut r, 5)?;
        let height = r.uint()?;
        field(&mut r, 6)?;
        let topic_count = r.array()?;
        if topic_count > MAX_TOPICS {
            return Err(BlockError::TooManyTopics { count: topic_count });
        }
        let mut topics: Vec<String> = Vec::with_capacity(topic_count);
        for _ in 0..topic_count {
            let topic = r.text()?;
            if topic.is_empty() {
                return Err(BlockError::EmptyTopic);
            }
            if topic.len() > MAX_TOPIC_BYTES {
                return Err(BlockError::TopicTooLong { size: topic.len() });
            }
            if topics.last().is_some_and(|last| last.as_str() >= topic) {
                return Err(BlockError::UnsortedTopics);
            }
            topics.push(topic.to_owned());
        }
        field(&mut r, 7)?;
        let parent_count = r.array()?;
        if parent_count > MAX_PARENTS {
            return Err(BlockError::TooManyParents {
                count: parent_count,
            });
        }
        let mut parents: Vec<BlockId> = Vec::with_capacity(parent_count);
        for _ in 0..parent_count {
            let parent = r.link()?;
            match parents.last() {
                Some(last) if *last == parent => return Err(BlockError::DuplicateParent(parent)),
                Some(last) if *last > parent => return Err(BlockError::UnsortedParents),
                _ => parents.push(parent),
            }
        }
        if entries > FIELDS.len() {
            let name = r.text()?;
            return Err(BlockError::UnknownField {
                name: name.chars().take(64).collect(),
            });
        }
        if !r.is_empty() {
            return Err(BlockError::TrailingBytes {
                extra: r.remaining(),
            });
        }

        if body.len() > MAX_BODY_BYTES {
            return Err(BlockError::BodyTooLarge { size: body.len() });
        }
        match (&chain, parents.is_empty()) {
            (None, false) => return Err(BlockError::GenesisWithParents),
            (None, true) if height != 0 => {
                return Err(BlockError::HeightMismatch {
                    expected: 0,
                    actual: height,
                })
            }
            (Some(_), true) => return Err(BlockError::NoParents),
            (Some(_), false) if height == 0 => {
                return Err(BlockError::HeightMismatch {
                    expected: 1,
                    actual: 0,
                })
            }
            _ => {}
        }

        let sig: [u8; 64] = sig
            .try_into()
            .map_err(|_| BlockError::SignatureLength { len: sig.len() })?;
        if verify {
            verify_signature(&author, &sig, bytes, after_sig)?;
        }

        Ok(Block {
            id: id.unwrap_or_else(|| BlockId::of(bytes)),
            bytes: bytes.to_vec(),
            chain,
            parents,
            height,
            author,
            time,
            topics,
            body_range,
        })
    }

    /// Decodes a block offered under a claimed ID, rejecting bytes that hash to another.
    pub fn decode_as(id: &BlockId, bytes: &[u8]) -> Result<Block, BlockError> {
        let actual = BlockId::of(bytes);
        if actual != *id {
            return Err(BlockError::IdMismatch {
                expected: *id,
                actual,
            });
        }
        Block::decode(bytes)
    }

    /// The content address of the block.
    pub fn id(&self) -> BlockId {
        self.id
    }

    /// The canonical encoding; [`Block::id`] is its hash.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The chain this block belongs to, `None` for a genesis block (whose ID is the chain's).
    pub fn chain(&self) -> Option<BlockId> {
        self.chain
    }

    /// The chain this block belongs to, the genesis naming itself.
    pub fn chain_id(&self) -> BlockId {
        self.chain.unwrap_or(self.id)
    }

    /// The leaves the author knew, sorted.
    pub fn parents(&self) -> &[BlockId] {
        &self.parents
    }

    /// Distance from the genesis along the longest path.
    pub fn height(&self) -> u64 {
        self.height
    }

    /// Who signed the block.
    pub fn author(&self) -> Author {
        self.author
    }

    /// The author's clock when the block was made (informational).
    pub fn time(&self) -> u64 {
        self.time
    }

    /// The block's topics, sorted.
    pub fn topics(&self) -> &[String] {
        &self.topics
    }

    /// The content.
    pub fn body(&self) -> &[u8] {
        &self.bytes[self.body_range.clone()]
    }

    /// Where the block sits in the chain order.
    pub fn position(&self) -> Position {
        Position {
            height: self.height,
            id: self.id,
        }
    }
}

/// A place in the chain order: by height, then by ID. Every peer computes the same order
/// from the same set of blocks, whatever order they arrived in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// The block's height.
    pub height: u64,
    /// The block's ID.
    pub id: BlockId,
}

/// Reads the map key of field `index` of [`FIELDS`], which the canonical order puts here.
/// `entries` is the size of the map: with every field counted, a key out of place is
/// disorder; with fewer, it is a missing field.
fn read_key(r: &mut Reader<'_>, index: usize, entries: usize) -> Result<(), BlockError> {
    let at = r.position();
    let key = r.text()?;
    match FIELDS.iter().position(|&field| field == key) {
        Some(found) if found == index => Ok(()),
        Some(found) if found > index && entries < FIELDS.len() => Err(BlockError::MissingField {
            name: FIELDS[index],
        }),
        Some(_) => Err(CborError::NonCanonical { at }.into()),
        None => Err(BlockError::UnknownField {
            name: key.chars().take(64).collect(),
        }),
    }
}
