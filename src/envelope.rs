//! The content envelope: what every sealed message carries inside its encryption.
//!
//! `[version, kind, target, payload]` in canonical CBOR, sealed as a whole, so that what a
//! message *is* (a message, an edit of one, a delete, a pointer to offchain content) is as
//! private as what it says. Versioned from the first message on, so that mutability and
//! offchain content add kinds without a format break: a reader that meets a kind it does not
//! know keeps it as [`ContentKind::Other`] (a newer client's content, shown as unsupported),
//! and a version it does not know is a typed error, never a misreading.

use crate::cbor::{CborError, Reader, Writer};
use crate::walytis::{BlockError, BlockId, ReadLink, WriteLink};

/// The envelope format this build writes and reads.
pub const ENVELOPE_VERSION: u64 = 1;

/// Largest envelope overhead beside the payload: the header items and a link.
pub const ENVELOPE_OVERHEAD: usize = 64;

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

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(self.payload.len() + ENVELOPE_OVERHEAD);
        w.array(4);
        w.uint(ENVELOPE_VERSION);
        w.uint(self.kind.code());
        match &self.target {
            Some(target) => w.link(target),
            None => w.null(),
        }
        w.bytes(&self.payload);
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
        if len != 4 {
            return Err(CborError::UnexpectedType {
                at: 0,
                expected: "an envelope of 4 items",
            }
            .into());
        }
        let kind = ContentKind::from_code(r.uint()?);
        let target = if r.null() { None } else { Some(r.link()?) };
        let payload = r.bytes()?.to_vec();
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
