//! Every way a block can be wrong, each made by hand and each rejected with its own error;
//! the codec known answers; and the pending set.
#![allow(clippy::expect_used, clippy::unwrap_used)]
#![cfg(not(target_arch = "wasm32"))]

mod common;

use ed25519_dalek::{Signer, SigningKey};
use endra::cbor::CborError;
use endra::store::MemoryStore;
use endra::walytis::{
    Block, BlockDraft, BlockError, BlockId, Chain, ChainError, Judgement, MAX_BLOCK_BYTES,
    MAX_BODY_BYTES, MAX_PARENTS, MAX_PENDING, MAX_TOPICS, MAX_TOPIC_BYTES,
};
use futures_executor::block_on;

/// A CBOR value for hand-made blocks, including spellings our encoder never produces.
#[derive(Clone)]
enum V {
    U(u64),
    B(Vec<u8>),
    T(String),
    A(Vec<V>),
    Link(BlockId),
    Null,
    /// Bytes written as they are.
    Raw(Vec<u8>),
}

fn head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    match n {
        0..=23 => out.push(m | n as u8),
        24..=0xff => out.extend([m | 24, n as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend((n as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(m | 26);
            out.extend((n as u32).to_be_bytes());
        }
        _ => {
            out.push(m | 27);
            out.extend(n.to_be_bytes());
        }
    }
}

fn enc(v: &V, out: &mut Vec<u8>) {
    match v {
        V::U(n) => head(out, 0, *n),
        V::B(b) => {
            head(out, 2, b.len() as u64);
            out.extend(b);
        }
        V::T(t) => {
            head(out, 3, t.len() as u64);
            out.extend(t.as_bytes());
        }
        V::A(items) => {
            head(out, 4, items.len() as u64);
            items.iter().for_each(|i| enc(i, out));
        }
        V::Link(id) => {
            out.extend([0xd8, 42]);
            head(out, 2, 37);
            out.push(0);
            out.extend(id.as_bytes());
        }
        V::Null => out.push(0xf6),
        V::Raw(bytes) => out.extend(bytes),
    }
}

fn map(fields: &[(&str, V)]) -> Vec<u8> {
    let mut out = Vec::new();
    head(&mut out, 5, fields.len() as u64);
    for (k, v) in fields {
        enc(&V::T((*k).to_string()), &mut out);
        enc(v, &mut out);
    }
    out
}

/// Signs `fields` (everything but `sig`) the way blocks are signed and prepends `sig`.
fn signed(fields: &[(&str, V)], key: &SigningKey) -> Vec<u8> {
    let unsigned = map(fields);
    let mut message = b"endra/walytis/block/v1\0".to_vec();
    message.extend(&unsigned);
    let sig = key.sign(&message).to_bytes().to_vec();
    let mut all = vec![("sig", V::B(sig))];
    all.extend(fields.iter().cloned());
    map(&all)
}

fn tagged(key: &SigningKey) -> Vec<u8> {
    let mut out = vec![0xed, 0x01];
    out.extend(key.verifying_key().to_bytes());
    out
}

/// The fields of a valid block on `chain` with one parent, in canonical order.
fn fields(key: &SigningKey, chain: BlockId, parent: BlockId) -> Vec<(&'static str, V)> {
    vec![
        ("body", V::B(b"hello".to_vec())),
        ("time", V::U(5)),
        ("chain", V::Link(chain)),
        ("author", V::B(tagged(key))),
        ("height", V::U(1)),
        ("topics", V::A(vec![V::T("a".into())])),
        ("parents", V::A(vec![V::Link(parent)])),
    ]
}

fn set(fields: &mut [(&'static str, V)], name: &str, value: V) {
    fields
        .iter_mut()
        .find(|(k, _)| *k == name)
        .expect("field")
        .1 = value;
}

fn genesis_chain() -> (SigningKey, Chain<MemoryStore>) {
    let key = common::key(1);
    let chain = block_on(Chain::create(
        MemoryStore::new(),
        &endra::identity::rules(),
        &key,
        0,
        vec![],
        vec![],
    ))
    .expect("create");
    (key, chain)
}

fn reject(bytes: &[u8]) -> BlockError {
    Block::decode(bytes).expect_err("block must be rejected")
}

#[test]
fn a_hand_made_valid_block_is_accepted() {
    // Guards the helpers: the rejections below differ from this block in one point only.
    let (key, mut chain) = genesis_chain();
    let bytes = signed(&fields(&key, chain.id(), chain.id()), &key);
    let block = Block::decode(&bytes).expect("valid");
    assert_eq!(block.body(), b"hello");
    let report = block_on(chain.insert([&bytes])).expect("insert");
    assert_eq!(report.accepted.len(), 1);
}

#[test]
fn our_encoding_is_canonical_dag_cbor() {
    // The encoder and the hand-made canonical spelling agree byte for byte.
    let key = common::key(1);
    let chain = BlockId::of(b"c");
    let ours = BlockDraft {
        chain: Some(chain),
        parents: vec![chain],
        height: 1,
        time: 5,
        topics: vec!["a".into()],
        body: b"hello".to_vec(),
    }
    .sign(&key)
    .expect("sign");
    assert_eq!(
        ours.bytes(),
        signed(&fields(&key, chain, chain), &key).as_slice()
    );
    assert_eq!(ours.id(), BlockId::of(ours.bytes()));
}

#[test]
fn cid_not_matching_the_bytes() {
    let (key, chain) = genesis_chain();
    let bytes = signed(&fields(&key, chain.id(), chain.id()), &key);
    let claimed = BlockId::of(b"something else");
    assert_eq!(
        Block::decode_as(&claimed, &bytes),
        Err(BlockError::IdMismatch {
            expected: claimed,
            actual: BlockId::of(&bytes)
        })
    );
}

#[test]
fn bad_signature() {
    let (key, chain) = genesis_chain();
    let mut f = fields(&key, chain.id(), chain.id());
    // Signed by one key, claiming another author.
    set(&mut f, "author", V::B(tagged(&common::key(2))));
    assert_eq!(reject(&signed(&f, &key)), BlockError::BadSignature);
    // A flipped bit of the body after signing.
    let mut bytes = signed(&fields(&key, chain.id(), chain.id()), &key);
    let at = bytes.windows(5).position(|w| w == b"hello").expect("body");
    bytes[at] ^= 1;
    assert_eq!(reject(&bytes), BlockError::BadSignature);
}

#[test]
fn wrong_chain() {
    let (key, mut chain) = genesis_chain();
    let other = BlockId::of(b"another chain");
    let bytes = signed(&fields(&key, other, chain.id()), &key);
    let report = block_on(chain.insert([&bytes])).expect("insert");
    assert_eq!(
        report.rejected[0].1,
        ChainError::InvalidBlock(BlockError::WrongChain {
            expected: chain.id(),
            actual: Some(other)
        })
    );
    assert_eq!(chain.len(), 1, "nothing stored");
}

#[test]
fn height_inconsistent_with_parents() {
    let (key, mut chain) = genesis_chain();
    let mut f = fields(&key, chain.id(), chain.id());
    set(&mut f, "height", V::U(7));
    let report = block_on(chain.insert([signed(&f, &key)])).expect("insert");
    assert_eq!(
        report.rejected[0].1,
        ChainError::InvalidBlock(BlockError::HeightMismatch {
            expected: 1,
            actual: 7
        })
    );
    assert_eq!(chain.len(), 1, "nothing stored");
    let mut f = fields(&key, chain.id(), chain.id());
    set(&mut f, "height", V::U(0));
    assert_eq!(
        reject(&signed(&f, &key)),
        BlockError::HeightMismatch {
            expected: 1,
            actual: 0
        }
    );
}

#[test]
fn duplicate_unsorted_and_too_many_parents() {
    let key = common::key(1);
    let chain = BlockId::of(b"c");
    let (a, b) = (BlockId::of(b"a"), BlockId::of(b"b"));
    let (low, high) = if a < b { (a, b) } else { (b, a) };
    let mut f = fields(&key, chain, chain);
    set(&mut f, "parents", V::A(vec![V::Link(low), V::Link(low)]));
    assert_eq!(reject(&signed(&f, &key)), BlockError::DuplicateParent(low));
    set(&mut f, "parents", V::A(vec![V::Link(high), V::Link(low)]));
    assert_eq!(reject(&signed(&f, &key)), BlockError::UnsortedParents);
    let mut many: Vec<BlockId> = (0..=MAX_PARENTS as u32)
        .map(|i| BlockId::of(&i.to_be_bytes()))
        .collect();
    many.sort();
    set(
        &mut f,
        "parents",
        V::A(many.into_iter().map(V::Link).collect()),
    );
    assert_eq!(
        reject(&signed(&f, &key)),
        BlockError::TooManyParents {
            count: MAX_PARENTS + 1
        }
    );
    set(&mut f, "parents", V::A(vec![]));
    assert_eq!(reject(&signed(&f, &key)), BlockError::NoParents);
}

#[test]
fn genesis_rules() {
    let key = common::key(1);
    let mut f = fields(&key, BlockId::of(b"c"), BlockId::of(b"p"));
    set(&mut f, "chain", V::Null);
    assert_eq!(reject(&signed(&f, &key)), BlockError::GenesisWithParents);
    set(&mut f, "parents", V::A(vec![]));
    assert_eq!(
        reject(&signed(&f, &key)),
        BlockError::HeightMismatch {
            expected: 0,
            actual: 1
        }
    );
    set(&mut f, "height", V::U(0));
    let genesis = Block::decode(&signed(&f, &key)).expect("a valid genesis");
    assert_eq!(genesis.chain_id(), genesis.id());
}

#[test]
fn oversized_body_and_block() {
    let key = common::key(1);
    let c = BlockId::of(b"c");
    let mut f = fields(&key, c, c);
    set(&mut f, "body", V::B(vec![0; MAX_BODY_BYTES + 1]));
    assert_eq!(
        reject(&signed(&f, &key)),
        BlockError::BodyTooLarge {
            size: MAX_BODY_BYTES + 1
        }
    );
    set(&mut f, "body", V::B(vec![0; MAX_BLOCK_BYTES]));
    let bytes = signed(&f, &key);
    assert_eq!(reject(&bytes), BlockError::TooLarge { size: bytes.len() });
    // The local writer cannot make one either.
    let draft = BlockDraft {
        chain: Some(c),
        parents: vec![c],
        height: 1,
        time: 0,
        topics: vec![],
        body: vec![0; MAX_BODY_BYTES + 1],
    };
    assert_eq!(
        draft.sign(&key),
        Err(BlockError::BodyTooLarge {
            size: MAX_BODY_BYTES + 1
        })
    );
}

#[test]
fn bad_topics() {
    let key = common::key(1);
    let c = BlockId::of(b"c");
    let mut f = fields(&key, c, c);
    let topics = |names: Vec<String>| V::A(names.into_iter().map(V::T).collect());
    set(
        &mut f,
        "topics",
        topics((0..=MAX_TOPICS).map(|i| format!("t{i:02}")).collect()),
    );
    assert_eq!(
        reject(&signed(&f, &key)),
        BlockError::TooManyTopics {
            count: MAX_TOPICS + 1
        }
    );
    set(&mut f, "topics", topics(vec![String::new()]));
    assert_eq!(reject(&signed(&f, &key)), BlockError::EmptyTopic);
    set(
        &mut f,
        "topics",
        topics(vec!["x".repeat(MAX_TOPIC_BYTES + 1)]),
    );
    assert_eq!(
        reject(&signed(&f, &key)),
        BlockError::TopicTooLong {
            size: MAX_TOPIC_BYTES + 1
        }
    );
    set(&mut f, "topics", topics(vec!["b".into(), "a".into()]));
    assert_eq!(reject(&signed(&f, &key)), BlockError::UnsortedTopics);
    set(&mut f, "topics", topics(vec!["a".into(), "a".into()]));
    assert_eq!(reject(&signed(&f, &key)), BlockError::UnsortedTopics);
}

#[test]
fn non_canonical_cbor() {
    let key = common::key(1);
    let c = BlockId::of(b"c");
    // 5 spelled with a one-byte extension.
    let mut f = fields(&key, c, c);
    set(&mut f, "time", V::Raw(vec![0x18, 5]));
    assert!(matches!(
        reject(&signed(&f, &key)),
        BlockError::Cbor(CborError::NonCanonical { .. })
    ));
    // An indefinite-length body.
    let mut f = fields(&key, c, c);
    set(&mut f, "body", V::Raw(vec![0x5f, 0x41, b'x', 0xff]));
    assert!(matches!(
        reject(&signed(&f, &key)),
        BlockError::Cbor(CborError::NonCanonical { .. })
    ));
    // Keys out of canonical order: "time" before "body".
    let mut f = fields(&key, c, c);
    f.swap(0, 1);
    assert!(matches!(
        reject(&signed(&f, &key)),
        BlockError::Cbor(CborError::NonCanonical { .. })
    ));
}

#[test]
fn trailing_and_truncated_bytes() {
    let key = common::key(1);
    let c = BlockId::of(b"c");
    let mut bytes = signed(&fields(&key, c, c), &key);
    bytes.push(0);
    assert_eq!(reject(&bytes), BlockError::TrailingBytes { extra: 1 });
    bytes.truncate(bytes.len() - 10);
    assert!(matches!(
        reject(&bytes),
        BlockError::Cbor(CborError::Truncated { .. })
    ));
    assert!(matches!(
        reject(&[]),
        BlockError::Cbor(CborError::Truncated { at: 0 })
    ));
}

#[test]
fn unknown_and_missing_fields() {
    let key = common::key(1);
    let c = BlockId::of(b"c");
    let mut f = fields(&key, c, c);
    f.push(("zzzzzzzz", V::U(1)));
    assert_eq!(
        reject(&signed(&f, &key)),
        BlockError::UnknownField {
            name: "zzzzzzzz".into()
        }
    );
    let mut f = fields(&key, c, c);
    f.insert(0, ("a", V::U(1)));
    assert_eq!(
        reject(&signed(&f, &key)),
        BlockError::UnknownField { name: "a".into() }
    );
    let mut f = fields(&key, c, c);
    f.retain(|(k, _)| *k != "time");
    assert_eq!(
        reject(&signed(&f, &key)),
        BlockError::MissingField { name: "time" }
    );
    let mut f = fields(&key, c, c);
    f.pop();
    assert_eq!(
        reject(&signed(&f, &key)),
        BlockError::MissingField { name: "parents" }
    );
}

#[test]
fn author_key_of_another_algorithm() {
    let key = common::key(1);
    let c = BlockId::of(b"c");
    let mut f = fields(&key, c, c);
    let mut wrong = tagged(&key);
    wrong[0] = 0xe7; // secp256k1-pub
    set(&mut f, "author", V::B(wrong));
    assert_eq!(reject(&signed(&f, &key)), BlockError::InvalidAuthor);
}

#[test]
fn a_block_waits_for_its_parents_and_is_accepted_when_they_arrive() {
    let (key, mut chain) = genesis_chain();
    let a = BlockDraft {
        chain: Some(chain.id()),
        parents: vec![chain.id()],
        height: 1,
        time: 1,
        topics: vec![],
        body: b"a".to_vec(),
    }
    .sign(&key)
    .expect("a");
    let b = BlockDraft {
        chain: Some(chain.id()),
        parents: vec![a.id()],
        height: 2,
        time: 2,
        topics: vec![],
        body: b"b".to_vec(),
    }
    .sign(&key)
    .expect("b");
    let report = block_on(chain.insert([b.bytes()])).expect("insert child");
    assert_eq!(report.waiting, vec![(b.id(), vec![a.id()])]);
    assert_eq!(chain.len(), 1);
    assert_eq!(chain.pending_len(), 1);
    // Offering the child again is a duplicate, not a second pending entry.
    let again = block_on(chain.insert([b.bytes()])).expect("insert again");
    assert_eq!(again.duplicates, vec![b.id()]);
    let report = block_on(chain.insert([a.bytes()])).expect("insert parent");
    let accepted: Vec<BlockId> = report.accepted.iter().map(|e| e.block.id()).collect();
    assert_eq!(
        accepted,
        vec![a.id(), b.id()],
        "parent, then the child that waited for it"
    );
    assert_eq!(chain.pending_len(), 0);
    assert_eq!(chain.leaves(), &[b.id()]);
}

#[test]
fn the_pending_set_is_bounded() {
    let (key, mut chain) = genesis_chain();
    let missing = BlockId::of(b"never arrives");
    let orphans: Vec<Vec<u8>> = (0..=MAX_PENDING as u64)
        .map(|i| {
            BlockDraft {
                chain: Some(chain.id()),
                parents: vec![missing],
                height: 7,
                time: i,
                topics: vec![],
                body: vec![],
            }
            .sign(&key)
            .expect("orphan")
            .bytes()
            .to_vec()
        })
        .collect();
    let report = block_on(chain.insert(&orphans)).expect("insert");
    assert_eq!(report.waiting.len(), MAX_PENDING);
    assert_eq!(report.rejected.len(), 1);
    assert_eq!(report.rejected[0].1, ChainError::PendingFull);
    assert_eq!(chain.len(), 1, "nothing stored");
}

/// `judge` decides as `insert` would, stores nothing, and leaves the rule's view where the
/// insert that follows needs it (no second rebuild per pushed block).
#[test]
fn judge_decides_as_insert_would_and_stores_nothing() {
    let rule = common::FounderOnly::new(true);
    let rebuilds = rule.rebuilds();
    let rules = endra::identity::rules().with(rule);
    let founder = common::key(1);
    let mut chain = block_on(Chain::create(
        MemoryStore::new(),
        &rules,
        &founder,
        1,
        vec![common::FOUNDER_ONLY_TOPIC.into()],
        b"g".to_vec(),
    ))
    .expect("create");
    let genesis = chain.id();
    let draft = |parents: Vec<BlockId>, height: u64, body: &[u8]| BlockDraft {
        chain: Some(genesis),
        parents,
        height,
        time: 2,
        topics: vec![],
        body: body.to_vec(),
    };
    let good = draft(vec![genesis], 1, b"mine")
        .sign(&founder)
        .expect("sign");
    let stranger = draft(vec![genesis], 1, b"theirs")
        .sign(&common::key(9))
        .expect("sign");
    let orphan = draft(vec![BlockId::of(b"nowhere")], 1, b"lost")
        .sign(&founder)
        .expect("sign");
    let wrong_height = draft(vec![genesis], 5, b"high")
        .sign(&founder)
        .expect("sign");
    let judge =
        |chain: &mut Chain<MemoryStore>, block: &[u8]| block_on(chain.judge(block)).expect("judge");
    assert_eq!(judge(&mut chain, stranger.bytes()), Judgement::Refused);
    assert_eq!(judge(&mut chain, wrong_height.bytes()), Judgement::Refused);
    assert_eq!(judge(&mut chain, b"garbage"), Judgement::Refused);
    assert_eq!(judge(&mut chain, orphan.bytes()), Judgement::Undecided);
    assert_eq!(judge(&mut chain, good.bytes()), Judgement::Admissible);
    assert_eq!(chain.len(), 1, "judging stores nothing");
    assert_eq!(chain.pending_bytes(), 0, "judging holds nothing pending");
    let before = rebuilds.load(std::sync::atomic::Ordering::Relaxed);
    let report = block_on(chain.insert([good.bytes()])).expect("insert");
    assert_eq!(report.accepted.len(), 1);
    let next = draft(vec![good.id()], 2, b"next")
        .sign(&founder)
        .expect("sign");
    assert_eq!(judge(&mut chain, next.bytes()), Judgement::Admissible);
    block_on(chain.insert([next.bytes()])).expect("insert");
    assert_eq!(chain.len(), 3);
    assert_eq!(
        rebuilds.load(std::sync::atomic::Ordering::Relaxed),
        before,
        "a judged block on the leaves is inserted without rebuilding the view"
    );
    assert_eq!(
        judge(&mut chain, good.bytes()),
        Judgement::Admissible,
        "held already"
    );
}
