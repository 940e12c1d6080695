//! The strict subset of DAG-CBOR that blocks, identity ops, sessions and the sync wire use.
//!
//! Writing always produces the canonical form (shortest integer heads, definite lengths,
//! map keys in length-then-bytewise order). Reading accepts *only* that form, so a decoded
//! item re-encodes to exactly the bytes it came from and a block's ID cannot have two
//! spellings. The codec knows CBOR only: links are raw CID bytes here, and what a CID must
//! be (a block ID) is Walytis's business (`walytis::id`).

/// Why bytes are not the canonical CBOR item expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CborError {
    /// The bytes end in the middle of an item.
    #[error("bytes end early (item at byte {at})")]
    Truncated {
        /// Offset of the item that does not fit.
        at: usize,
    },
    /// An item is of the wrong CBOR type.
    #[error("expected {expected} at byte {at}")]
    UnexpectedType {
        /// Offset of the item.
        at: usize,
        /// What was expected there.
        expected: &'static str,
    },
    /// Valid CBOR but not the canonical DAG-CBOR spelling (non-minimal integer, indefinite
    /// length, keys out of order or repeated).
    #[error("non-canonical DAG-CBOR at byte {at}")]
    NonCanonical {
        /// Offset of the offending item.
        at: usize,
    },
    /// A text string is not UTF-8.
    #[error("invalid UTF-8 at byte {at}")]
    InvalidUtf8 {
        /// Offset of the string.
        at: usize,
    },
    /// Bytes follow the item.
    #[error("{extra} bytes after the end")]
    TrailingBytes {
        /// How many.
        extra: usize,
    },
}

const UINT: u8 = 0;
const BYTES: u8 = 2;
const TEXT: u8 = 3;
const ARRAY: u8 = 4;
const MAP: u8 = 5;
const TAG: u8 = 6;
const SIMPLE: u8 = 7;
/// Tag of an IPLD link (CID) in DAG-CBOR.
const CID_TAG: u64 = 42;
const NULL: u8 = 0xf6;
const FALSE: u8 = 0xf4;
const TRUE: u8 = 0xf5;

/// Appends canonical CBOR items to a byte vector.
pub(crate) struct Writer {
    pub(crate) out: Vec<u8>,
}

impl Writer {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Writer {
            out: Vec::with_capacity(capacity),
        }
    }

    fn head(&mut self, major: u8, value: u64) {
        let major = major << 5;
        match value {
            0..=23 => self.out.push(major | value as u8),
            24..=0xff => self.out.extend_from_slice(&[major | 24, value as u8]),
            0x100..=0xffff => {
                self.out.push(major | 25);
                self.out.extend_from_slice(&(value as u16).to_be_bytes());
            }
            0x1_0000..=0xffff_ffff => {
                self.out.push(major | 26);
                self.out.extend_from_slice(&(value as u32).to_be_bytes());
            }
            _ => {
                self.out.push(major | 27);
                self.out.extend_from_slice(&value.to_be_bytes());
            }
        }
    }

    pub(crate) fn uint(&mut self, value: u64) {
        self.head(UINT, value);
    }

    pub(crate) fn bytes(&mut self, value: &[u8]) {
        self.head(BYTES, value.len() as u64);
        self.out.extend_from_slice(value);
    }

    pub(crate) fn text(&mut self, value: &str) {
        self.head(TEXT, value.len() as u64);
        self.out.extend_from_slice(value.as_bytes());
    }

    pub(crate) fn array(&mut self, len: usize) {
        self.head(ARRAY, len as u64);
    }

    pub(crate) fn map(&mut self, len: usize) {
        self.head(MAP, len as u64);
    }

    pub(crate) fn null(&mut self) {
        self.out.push(NULL);
    }

    pub(crate) fn bool(&mut self, value: bool) {
        self.out.push(if value { TRUE } else { FALSE });
    }

    /// A link: tag 42 around the CID bytes with the identity multibase prefix `0x00`.
    pub(crate) fn cid(&mut self, cid: &[u8]) {
        self.head(TAG, CID_TAG);
        self.head(BYTES, cid.len() as u64 + 1);
        self.out.push(0);
        self.out.extend_from_slice(cid);
    }
}

/// Reads canonical CBOR items from a byte slice, rejecting anything non-canonical.
pub(crate) struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(input: &'a [u8]) -> Self {
        Reader { input, pos: 0 }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos == self.input.len()
    }

    /// Checks that nothing follows what was read.
    pub(crate) fn finish(&self) -> Result<(), CborError> {
        match self.remaining() {
            0 => Ok(()),
            extra => Err(CborError::TrailingBytes { extra }),
        }
    }

    /// Offset of the next item.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.input.len() - self.pos
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], CborError> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|&end| end <= self.input.len())
            .ok_or(CborError::Truncated { at: self.pos })?;
        let slice = &self.input[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    /// Reads an item head and checks it is of the expected major type and minimally encoded.
    fn head(&mut self, expected: u8, what: &'static str) -> Result<u64, CborError> {
        let at = self.pos;
        let first = self.take(1)?[0];
        let (major, info) = (first >> 5, first & 0x1f);
        if major != expected {
            return Err(CborError::UnexpectedType { at, expected: what });
        }
        let value = match info {
            0..=23 => u64::from(info),
            24 => u64::from(self.take(1)?[0]),
            25 => u64::from(u16::from_be_bytes([self.take(1)?[0], self.take(1)?[0]])),
            26 => {
                let b = self.take(4)?;
                u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            }
            27 => {
                let b = self.take(8)?;
                u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
            }
            // 28..=30 are reserved, 31 is an indefinite length: neither is DAG-CBOR.
            _ => return Err(CborError::NonCanonical { at }),
        };
        let minimal = match info {
            24 => value >= 24,
            25 => value > 0xff,
            26 => value > 0xffff,
            27 => value > 0xffff_ffff,
            _ => true,
        };
        if !minimal {
            return Err(CborError::NonCanonical { at });
        }
        Ok(value)
    }

    fn len(&mut self, major: u8, what: &'static str) -> Result<usize, CborError> {
        let at = self.pos;
        let len = self.head(major, what)?;
        // Every counted item takes at least one byte, so a longer count is a lie.
        usize::try_from(len)
            .ok()
            .filter(|&len| len <= self.remaining())
            .ok_or(CborError::Truncated { at })
    }

    pub(crate) fn uint(&mut self) -> Result<u64, CborError> {
        self.head(UINT, "unsigned integer")
    }

    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], CborError> {
        let len = self.len(BYTES, "byte string")?;
        self.take(len)
    }

    pub(crate) fn text(&mut self) -> Result<&'a str, CborError> {
        let at = self.pos;
        let len = self.len(TEXT, "text string")?;
        std::str::from_utf8(self.take(len)?).map_err(|_| CborError::InvalidUtf8 { at })
    }

    pub(crate) fn array(&mut self) -> Result<usize, CborError> {
        self.len(ARRAY, "array")
    }

    pub(crate) fn map(&mut self) -> Result<usize, CborError> {
        self.len(MAP, "map")
    }

    /// Reads `null` if it is the next item.
    pub(crate) fn null(&mut self) -> bool {
        if self.peek() == Some(NULL) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    pub(crate) fn bool(&mut self) -> Result<bool, CborError> {
        let at = self.pos;
        match self.take(1)?[0] {
            FALSE => Ok(false),
            TRUE => Ok(true),
            _ => Err(CborError::UnexpectedType {
                at,
                expected: "boolean",
            }),
        }
    }

    /// Reads a link (tag 42 around `0x00` and CID bytes): the CID bytes, unchecked.
    pub(crate) fn cid(&mut self) -> Result<&'a [u8], CborError> {
        let at = self.pos;
        let not_a_link = CborError::UnexpectedType {
            at,
            expected: "link",
        };
        if self.peek().map(|b| b >> 5) == Some(SIMPLE) || self.head(TAG, "link")? != CID_TAG {
            return Err(not_a_link);
        }
        match self.bytes()?.split_first() {
            Some((0, cid)) => Ok(cid),
            _ => Err(not_a_link),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_minimal_and_round_trip() {
        for value in [
            0u64,
            23,
            24,
            255,
            256,
            65_535,
            65_536,
            u32::MAX as u64,
            u64::MAX,
        ] {
            let mut w = Writer::with_capacity(9);
            w.uint(value);
            let mut r = Reader::new(&w.out);
            assert_eq!(r.uint(), Ok(value));
            assert!(r.is_empty());
        }
        // 5 written with a one-byte extension is not canonical.
        assert_eq!(
            Reader::new(&[0x18, 5]).uint(),
            Err(CborError::NonCanonical { at: 0 })
        );
        // Indefinite-length byte strings are not DAG-CBOR.
        assert_eq!(
            Reader::new(&[0x5f, 0xff]).bytes(),
            Err(CborError::NonCanonical { at: 0 })
        );
    }

    #[test]
    fn lengths_beyond_the_input_are_truncation() {
        assert_eq!(
            Reader::new(&[0x5a, 0xff, 0xff, 0xff, 0xff]).bytes(),
            Err(CborError::Truncated { at: 0 })
        );
    }
}
