//! Offchain content, the sans-IO core: content sealed in segments round-trips at every size
//! around the segment boundary; every segment is checked on its own against the commitment,
//! so a tampered, swapped, moved, truncated or extended content is caught at the segment it
//! touches; content sealed for one chain or under one epoch's key opens nowhere else; and a
//! large content streams one segment at a time.
#![allow(clippy::expect_used, clippy::unwrap_used)]
#![cfg(not(target_arch = "wasm32"))]

use endra::identity::EpochKey;
use endra::offchain::commitment::{erase_check, leaf, single_segment};
use endra::offchain::{
    erase_secret, Commitment, ContentReader, ContentWriter, OffchainError, SegmentTree, SEGMENT_LEN,
};
use endra::walytis::BlockId;
use proptest::prelude::*;
use rand_core::{OsRng, RngCore};

const EPOCH: [u8; 16] = [7; 16];

fn chain() -> BlockId {
    BlockId::of(b"a chain bound to a group")
}

fn bytes(len: usize) -> Vec<u8> {
    let mut content = vec![0u8; len];
    OsRng.fill_bytes(&mut content);
    content
}

/// Seals `content` and reads it back through the tree a fetching replica would rebuild from
/// the leaves alone.
fn round_trip(key: &EpochKey, content: &[u8]) -> (Commitment, Vec<Vec<u8>>, Vec<u8>) {
    let (commitment, tree, sealed) = ContentWriter::seal_all(
        key,
        EPOCH,
        &chain(),
        "application/octet-stream",
        content,
        &mut OsRng,
    )
    .unwrap();
    let commitment = Commitment::decode(&commitment.encode()).unwrap();
    let tree = SegmentTree::verified(&commitment, tree.leaves().to_vec()).unwrap();
    let reader = ContentReader::new(key, &chain(), commitment.clone(), tree).unwrap();
    let mut opened = Vec::new();
    for (index, segment) in sealed.iter().enumerate() {
        opened.extend(reader.open(index as u32, segment).unwrap());
    }
    (commitment, sealed, opened)
}

#[test]
fn content_round_trips_at_every_size_around_a_segment() {
    let key = EpochKey::generate(&mut OsRng);
    for len in [
        0,
        1,
        SEGMENT_LEN - 1,
        SEGMENT_LEN,
        SEGMENT_LEN + 1,
        3 * SEGMENT_LEN,
        3 * SEGMENT_LEN + 17,
    ] {
        let content = bytes(len);
        let (commitment, sealed, opened) = round_trip(&key, &content);
        assert_eq!(opened, content, "{len} bytes");
        assert_eq!(commitment.size, len as u64);
        assert_eq!(sealed.len(), commitment.segments() as usize);
        // The ciphertext holds no 16-byte window of the plaintext.
        if len >= 16 {
            for window in content.windows(16).step_by(4096) {
                assert!(sealed.iter().all(|s| !s.windows(16).any(|w| w == window)));
            }
        }
    }
}

#[test]
fn every_segment_is_checked_on_its_own() {
    let key = EpochKey::generate(&mut OsRng);
    let content = bytes(3 * SEGMENT_LEN + 100);
    let (commitment, tree, sealed) =
        ContentWriter::seal_all(&key, EPOCH, &chain(), "text/plain", &content, &mut OsRng).unwrap();
    let reader = ContentReader::new(&key, &chain(), commitment.clone(), tree.clone()).unwrap();

    // A flipped bit in any segment: caught at that segment, the others still open.
    for index in 0..sealed.len() {
        let mut tampered = sealed[index].clone();
        tampered[10] ^= 1;
        assert_eq!(
            reader.open(index as u32, &tampered),
            Err(OffchainError::SegmentMismatch {
                index: index as u32
            })
        );
        for (other, segment) in sealed.iter().enumerate().filter(|(o, _)| *o != index) {
            assert!(reader.open(other as u32, segment).is_ok());
        }
    }
    // Swapped segments, a segment served for another index, one beyond the content.
    assert!(matches!(
        reader.open(0, &sealed[1]),
        Err(OffchainError::SegmentMismatch { index: 0 })
    ));
    assert!(matches!(
        reader.open(4, &sealed[3]),
        Err(OffchainError::NoSuchSegment {
            index: 4,
            segments: 4
        })
    ));
    // Leaves that do not make the root, or too few of them (a truncated content), or one
    // too many (an extended one): refused before any segment is read.
    let mut leaves = tree.leaves().to_vec();
    leaves[2][0] ^= 1;
    assert_eq!(
        SegmentTree::verified(&commitment, leaves),
        Err(OffchainError::TreeMismatch)
    );
    let truncated = tree.leaves()[..3].to_vec();
    assert_eq!(
        SegmentTree::verified(&commitment, truncated),
        Err(OffchainError::TreeMismatch)
    );
    let mut extended = tree.leaves().to_vec();
    extended.push(leaf(4, b"more"));
    assert_eq!(
        SegmentTree::verified(&commitment, extended),
        Err(OffchainError::TreeMismatch)
    );
}

#[test]
fn a_segment_read_back_from_the_store_opens_and_damage_is_named_as_on_arrival() {
    let key = EpochKey::generate(&mut OsRng);
    let content = bytes(3 * SEGMENT_LEN + 100);
    let (commitment, tree, sealed) =
        ContentWriter::seal_all(&key, EPOCH, &chain(), "text/plain", &content, &mut OsRng).unwrap();
    let reader = ContentReader::new(&key, &chain(), commitment.clone(), tree.clone()).unwrap();
    let opened: Vec<u8> = sealed
        .iter()
        .enumerate()
        .flat_map(|(i, segment)| reader.open_stored(i as u32, segment).unwrap())
        .collect();
    assert_eq!(opened, content);
    // Damaged in the store: the tag catches it, and the tree says it is not the segment.
    for (index, segment) in sealed.iter().enumerate() {
        let mut damaged = segment.clone();
        damaged[10] ^= 1;
        assert_eq!(
            reader.open_stored(index as u32, &damaged),
            Err(OffchainError::SegmentMismatch {
                index: index as u32
            })
        );
    }
    assert_eq!(
        reader.open_stored(0, &sealed[1]),
        Err(OffchainError::SegmentMismatch { index: 0 })
    );
    assert_eq!(
        reader.open_stored(4, &sealed[3]),
        Err(OffchainError::NoSuchSegment {
            index: 4,
            segments: 4
        })
    );
    // The segment the tree names, under another key: the key is wrong, not the bytes.
    let other = EpochKey::generate(&mut OsRng);
    let wrong = ContentReader::new(&other, &chain(), commitment, tree).unwrap();
    assert_eq!(
        wrong.open_stored(2, &sealed[2]),
        Err(OffchainError::WrongKey { index: 2 })
    );
}

#[test]
fn content_opens_only_in_its_chain_and_under_its_key() {
    let key = EpochKey::generate(&mut OsRng);
    let content = bytes(SEGMENT_LEN + 5);
    let (commitment, tree, sealed) =
        ContentWriter::seal_all(&key, EPOCH, &chain(), "text/plain", &content, &mut OsRng).unwrap();
    // Moved to another chain: its segments verify (they are the same bytes) but open under
    // no key there.
    let elsewhere = BlockId::of(b"another chain");
    let moved = ContentReader::new(&key, &elsewhere, commitment.clone(), tree.clone()).unwrap();
    assert_eq!(
        moved.open(0, &sealed[0]),
        Err(OffchainError::WrongKey { index: 0 })
    );
    // Another epoch's key (a removed device's, say).
    let other = EpochKey::generate(&mut OsRng);
    let wrong = ContentReader::new(&other, &chain(), commitment.clone(), tree.clone()).unwrap();
    assert_eq!(
        wrong.open(1, &sealed[1]),
        Err(OffchainError::WrongKey { index: 1 })
    );
    // A commitment that claims another size for the same segments: the last segment's
    // length no longer fits (or, with another nonce, nothing opens).
    let resized = Commitment {
        size: commitment.size - 1,
        ..commitment.clone()
    };
    let reader = ContentReader::new(&key, &chain(), resized, tree).unwrap();
    assert!(reader.open(1, &sealed[1]).is_err());
}

#[test]
fn writers_refuse_content_out_of_shape() {
    let key = EpochKey::generate(&mut OsRng);
    let mut writer = ContentWriter::new(&key, EPOCH, &chain(), "text/plain", &mut OsRng).unwrap();
    assert!(matches!(
        writer.seal(&[0; 10], false),
        Err(OffchainError::Shape(_))
    ));
    assert!(matches!(
        writer.seal(&vec![0; SEGMENT_LEN + 1], true),
        Err(OffchainError::Shape(_))
    ));
    writer.seal(&vec![0; SEGMENT_LEN], false).unwrap();
    // Whole segments end on a full one: an empty last segment after others is refused.
    assert!(matches!(
        writer.seal(&[], true),
        Err(OffchainError::Shape(_))
    ));
    writer.seal(&[1, 2, 3], true).unwrap();
    assert!(matches!(
        writer.seal(&[4], true),
        Err(OffchainError::Shape(_))
    ));
    let (commitment, tree) = writer.finish().unwrap();
    assert_eq!(commitment.size, SEGMENT_LEN as u64 + 3);
    assert_eq!(tree.segments(), 2);
    let unfinished = ContentWriter::new(&key, EPOCH, &chain(), "text/plain", &mut OsRng).unwrap();
    assert!(matches!(unfinished.finish(), Err(OffchainError::Shape(_))));
    assert!(ContentWriter::new(&key, EPOCH, &chain(), &"x".repeat(300), &mut OsRng).is_err());
}

/// 20 MiB sealed and opened through the streaming API: every call takes or gives one segment
/// (at most 64 KiB of plaintext), whatever the content's size.
#[test]
fn a_large_content_streams_one_segment_at_a_time() {
    let key = EpochKey::generate(&mut OsRng);
    let total: usize = 20 * 1024 * 1024 + 123;
    let segments = total.div_ceil(SEGMENT_LEN);
    let mut writer = ContentWriter::new(&key, EPOCH, &chain(), "video/mp4", &mut OsRng).unwrap();
    let mut sealed = Vec::with_capacity(segments);
    let mut plain_hash = 0u64;
    for n in 0..segments {
        let len = SEGMENT_LEN.min(total - n * SEGMENT_LEN);
        let segment: Vec<u8> = (0..len).map(|i| ((n * 31 + i) % 251) as u8).collect();
        plain_hash = segment.iter().fold(plain_hash, |h, b| {
            h.wrapping_mul(31).wrapping_add(u64::from(*b))
        });
        sealed.push(writer.seal(&segment, n + 1 == segments).unwrap());
    }
    let (commitment, tree) = writer.finish().unwrap();
    assert_eq!(commitment.size, total as u64);
    let reader = ContentReader::new(&key, &chain(), commitment, tree).unwrap();
    let mut opened_hash = 0u64;
    for (index, segment) in sealed.iter().enumerate() {
        let plain = reader.open(index as u32, segment).unwrap();
        assert!(plain.len() <= SEGMENT_LEN);
        opened_hash = plain.iter().fold(opened_hash, |h, b| {
            h.wrapping_mul(31).wrapping_add(u64::from(*b))
        });
    }
    assert_eq!(opened_hash, plain_hash);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    /// Any content, any single corrupted byte anywhere: the corrupted segment is refused and
    /// every other opens to the original bytes.
    #[test]
    fn no_corrupted_byte_passes(len in 0usize..(3 * SEGMENT_LEN), at in any::<usize>(), bit in 0u8..8) {
        let key = EpochKey::generate(&mut OsRng);
        let content = bytes(len);
        let (commitment, tree, mut sealed) = ContentWriter::seal_all(
            &key, EPOCH, &chain(), "x/y", &content, &mut OsRng,
        ).unwrap();
        let reader = ContentReader::new(&key, &chain(), commitment, tree).unwrap();
        let total: usize = sealed.iter().map(Vec::len).sum();
        let mut at = at % total;
        let mut hit = 0;
        for (index, segment) in sealed.iter().enumerate() {
            if at < segment.len() {
                hit = index;
                break;
            }
            at -= segment.len();
        }
        sealed[hit][at] ^= 1 << bit;
        let mut opened = Vec::new();
        for (index, segment) in sealed.iter().enumerate() {
            match reader.open(index as u32, segment) {
                Ok(plain) => {
                    prop_assert_ne!(index, hit);
                    opened.push((index, plain));
                }
                Err(_) => prop_assert_eq!(index, hit),
            }
        }
        for (index, plain) in opened {
            let start = index * SEGMENT_LEN;
            prop_assert_eq!(&plain[..], &content[start..start + plain.len()]);
        }
    }
}

#[test]
fn content_of_one_segment_is_named_by_its_sealed_bytes_alone() {
    // What a replica does with content pushed inline: it cannot read the commitment in the
    // sealed block yet, so it names the content by the segment's bytes, and that name must
    // be the commitment's root for every size that fits one segment, and for none larger.
    let key = EpochKey::generate(&mut OsRng);
    for len in [0, 1, 100, SEGMENT_LEN - 1, SEGMENT_LEN] {
        let (commitment, sealed, _) = round_trip(&key, &bytes(len));
        assert_eq!(sealed.len(), 1);
        // Any member derives the erase check from the content key.
        let check = erase_check(&erase_secret(&key, &chain(), &commitment.nonce).unwrap());
        let (root, leaves) = single_segment(&sealed[0], &check).expect("one segment");
        assert_eq!(root, commitment.root, "{len} bytes");
        let tree = SegmentTree::verified(&commitment, leaves.to_vec()).unwrap();
        // The root names the erase check: a tree with another one does not verify, so a
        // peer cannot swap in a check whose secret it knows.
        let swapped = vec![leaves[0], erase_check(&[9; 32])];
        assert_eq!(
            SegmentTree::verified(&commitment, swapped),
            Err(OffchainError::TreeMismatch)
        );
        let reader = ContentReader::new(&key, &chain(), commitment, tree).unwrap();
        assert_eq!(reader.open(0, &sealed[0]).unwrap().len(), len);
    }
    let (_, sealed, _) = round_trip(&key, &bytes(SEGMENT_LEN + 1));
    assert_eq!(sealed.len(), 2);
    let mut both = sealed[0].clone();
    both.extend(&sealed[1]);
    assert!(single_segment(&both, &[0; 32]).is_none());
}
