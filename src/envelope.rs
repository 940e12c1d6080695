//! The content envelope: what every sealed message carries inside its encryption.
//!
//! `[version, kind, target, payload]` in canonical CBOR, sealed as a whole, so that what a
//! message *is* (a message, an edit of one, a delete, a pointer to offchain content) is as
//! private as what it says. Versioned from the first message on, so that mutability and
//! offchain content add kinds without a format break: a reader that meets a kind it does not
//! know keeps it as [`ContentKind::Other`] (a newer client's content, shown as unsupported),
//! and a version it does not know is a typed error, never a misreading.
//!
//! **Padding**: an envelope is written `[version, kind, target, payload, padding]`, the
//! padding zero bytes that bring its length to a bucket — at least [`MIN_PADDED`] bytes, then
//! Padmé's (a length rounded to keep its top bits, at most about 12% more), never beyond
//! [`MAX_PADDED`] — so that a relay or an outsider cannot tell from a sealed block's length
//! whether it is a short text, a post, an edit or a delete. Envelopes without the padding item
//! (written before it existed) are still read.

use crate::cbor::{CborError, Reader, Writer};
use crate::walytis::{BlockError, BlockId, ReadLink, WriteLink, MAX_BODY_BYTES};

/// The envelope format this build writes and reads.
pub const ENVELOPE_VERSION: u64 = 1;

/// Largest envelope overhead beside the payload: the header items and a link.
pub const ENVELOPE_OVERHEAD: usize = 64;

/// The length every shorter envelope is padded to: a text message of a few hundred bytes and
/// every version op (a post's, an edit's, a delete's, naming up to a few seen versions) fit.
pub const MIN_PADDED: usize = 512;

/// The longest padding brings an envelope to: room is left for the seal and the anchor in a
/// block's body, so padding never makes a message too large to write.
pub const MAX_PADDED: usize = MAX_BODY_BYTES - 1024;

/// The length an envelope of `len` bytes is padded to (see the module docs).
pub fn padded_len(len: usize) -> usize {
    if len <= MIN_PADDED {
        return MIN_PADDED;
    }
    // Padmé: keep the top ⌊log2 e⌋ + 1 bits of the length, e = ⌊log2 len⌋.
    let e = usize::BITS - 1 - len.leading_zeros();
    let s = u32::BITS - 1 - e.leading_zeros() + 1;
    let mask = (1usize << (e - s)) - 1;
    let padded = (len + mask) & !mask;
    padded.min(MAX_PADDED.max(len))
}

/// Bytes of the CBOR head of a byte string of `len` bytes.
fn bytes_head_len(len: usize) -> usize {
    match len {
        0..=23 => 1,
        24..=0xff => 2,
        0x100..=0xffff => 3,
        _ => 5,
    }
}

/// What a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ContentKind {
    /// A message: its payload is the application's bytes.
    Message,
    /// A version of a record (see [`crate::mutability`]): its payload is a
    /// [`crate::mutability::VersionOp`], whose content lives offchain.
    Version,
    /// A kind this build does not know (a newer client's): kept, not interpreted.
    Other(u64),
}

impl ContentKind {
    const MESSAGE: u64 = 1;
    const VERSION: u64 = 2;

    fn code(self) -> u64 {
        match self {
            ContentKind::Message => Self::MESSAGE,
            ContentKind::Version => Self::VERSION,
            ContentKind::Other(code) => code,
        }
    }

    fn from_code(code: u64) -> Self {
        match code {
            Self::MESSAGE => ContentKind::Message,
            Self::VERSION => ContentKind::Version,
            other => ContentKind::Other(other),
        }
    }
}

/// Why sealed content is not an envelope this build reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// Not the canonical CBOR of an envelope.
    #[error("malformed content envelope: {0}")]
    Cbor(#[from] CborError),
    /// The target is not a block ID.
    #[error("malformed content envelope: {0}")]
    Target(#[from] BlockError),
    /// An envelope format newer (or other) than this build's.
    #[error("content envelope version {0}, this build reads version {ENVELOPE_VERSION}")]
    UnsupportedVersion(u64),
}

/// One message's content as sealed: its kind, the record it is about, and its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// What the message is.
    pub kind: ContentKind,
    /// The record (a block) the message is about — the message an edit changes, say — or
    /// `None`.
    pub target: Option<BlockId>,
    /// The content itself.
    pub payload: Vec<u8>,
}

impl Envelope {
    /// A plain message.
    pub fn message(payload: impl Into<Vec<u8>>) -> Self {
        Envelope {
            kind: ContentKind::Message,
            target: None,
            payload: payload.into(),
        }
    }

    /// The canonical encoding, padded (see the module docs).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(self.payload.len() + ENVELOPE_OVERHEAD);
        w.array(5);
        w.uint(ENVELOPE_VERSION);
        w.uint(self.kind.code());
        match &self.target {
            Some(target) => w.link(target),
            None => w.null(),
        }
        w.bytes(&self.payload);
        // The fewest zero bytes whose item brings the length to the bucket (one byte over it
        // where no padding length lands on it exactly: the head grows by a byte there).
        let unpadded = w.out.len();
        let target = padded_len(unpadded + 1);
        let mut padding = target.saturating_sub(unpadded + 1);
        while padding > 0 && unpadded + bytes_head_len(padding - 1) + padding > target {
            padding -= 1;
        }
        w.bytes(&vec![0; padding]);
        w.out
    }

    /// Reads an envelope; only the canonical encoding of this version is accepted.
    pub fn decode(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        let mut r = Reader::new(bytes);
        let len = r.array()?;
        let version = r.uint()?;
        if version != ENVELOPE_VERSION {
            return Err(EnvelopeError::UnsupportedVersion(version));
        }
        if len != 4 && len != 5 {
            return Err(CborError::UnexpectedType {
                at: 0,
                expected: "an envelope of 4 or 5 items",
            }
            .into());
        }
        let kind = ContentKind::from_code(r.uint()?);
        let target = if r.null() { None } else { Some(r.link()?) };
        let payload = r.bytes()?.to_vec();
        if len == 5 {
            let at = r.position();
            if r.bytes()?.iter().any(|b| *b != 0) {
                return Err(CborError::UnexpectedType {
                    at,
                    expected: "padding of zero bytes",
                }
                .into());
            }
        }
        r.finish()?;
        Ok(Envelope {
            kind,
            target,
            payload,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip_and_refuse_what_they_do_not_know() {
        let target = BlockId::of(b"a record");
        for envelope in [
            Envelope::message(b"hello".to_vec()),
            Envelope {
                kind: ContentKind::Other(7),
                target: Some(target),
                payload: vec![],
            },
        ] {
            let bytes = envelope.encode();
            assert_eq!(Envelope::decode(&bytes), Ok(envelope));
        }
        // A newer version is refused by name, whatever follows.
        let mut w = Writer::with_capacity(16);
        w.array(5);
        w.uint(2);
        for _ in 0..4 {
            w.null();
        }
        assert_eq!(
            Envelope::decode(&w.out),
            Err(EnvelopeError::UnsupportedVersion(2))
        );
        // Padded to a bucket; an envelope from before padding is still read; padding that is
        // not zeros is refused.
        for size in [0, 1, 100, 400, 480, 600, 5_000, 60_000] {
            let envelope = Envelope::message(vec![7; size]);
            let bytes = envelope.encode();
            let bucket = padded_len(bytes.len() - 1);
            assert!(
                bytes.len() == bucket || bytes.len() == bucket + 1,
                "{size}: {} bytes for a bucket of {bucket}",
                bytes.len()
            );
            assert!(bytes.len() >= MIN_PADDED);
            assert_eq!(Envelope::decode(&bytes), Ok(envelope));
        }
        // Above the minimum, a bucket adds at most about 12%.
        for len in (MIN_PADDED + 1..MAX_PADDED).step_by(7) {
            let padded = padded_len(len);
            assert!(
                padded >= len && (padded - len) * 100 <= len * 12,
                "{len} → {padded}"
            );
        }
        // Padding never takes an envelope past MAX_PADDED, and adds only its empty item to
        // one already past it: it never makes a message too large to write.
        let near = Envelope::message(vec![7; MAX_PADDED - 100]).encode();
        assert!(near.len() <= MAX_PADDED + 1, "{} bytes", near.len());
        let past = Envelope::message(vec![7; MAX_PADDED]);
        let mut unpadded = Writer::with_capacity(MAX_PADDED + 64);
        unpadded.array(4);
        unpadded.uint(ENVELOPE_VERSION);
        unpadded.uint(1);
        unpadded.null();
        unpadded.bytes(&past.payload);
        assert_eq!(past.encode().len(), unpadded.out.len() + 1);
        assert_eq!(
            Envelope::message(vec![1]).encode().len(),
            Envelope::message(vec![1; 400]).encode().len(),
            "a short text and a longer one: one length"
        );
        let mut w = Writer::with_capacity(32);
        w.array(4);
        w.uint(ENVELOPE_VERSION);
        w.uint(1);
        w.null();
        w.bytes(b"old");
        assert_eq!(
            Envelope::decode(&w.out),
            Ok(Envelope::message(b"old".to_vec()))
        );
        let mut bytes = Envelope::message(b"x".to_vec()).encode();
        let last = bytes.len() - 1;
        bytes[last] = 1;
        assert!(matches!(
            Envelope::decode(&bytes),
            Err(EnvelopeError::Cbor(CborError::UnexpectedType { .. }))
        ));
        // Trailing bytes, and bytes that are no envelope at all.
        let mut bytes = Envelope::message(b"x".to_vec()).encode();
        bytes.push(0);
        assert_eq!(
            Envelope::decode(&bytes),
            Err(EnvelopeError::Cbor(CborError::TrailingBytes { extra: 1 }))
        );
        assert!(matches!(
            Envelope::decode(b"hello"),
            Err(EnvelopeError::Cbor(_))
        ));
    }
}
