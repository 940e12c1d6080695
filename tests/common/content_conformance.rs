//! The content store conformance suite: every `ContentStore` must pass it (memory and redb
//! natively, IndexedDB in headless Chromium). Each check panics with a message naming what
//! broke.

use std::future::Future;

use endra::identity::EpochKey;
use endra::offchain::store::Served;
use endra::offchain::{ContentReader, ContentRoot, ContentStore, ContentWriter, SegmentTree};
use endra::walytis::store::BlockStore;
use endra::walytis::BlockId;
use rand_core::OsRng;

/// Runs the whole suite. `reopen` closes a handle and opens the same database again.
pub async fn run<S, F, Fut>(store: S, reopen: F)
where
    S: ContentStore + BlockStore + Clone,
    F: Fn(S) -> Fut,
    Fut: Future<Output = S>,
{
    let store = sealed_content_round_trips_and_survives_a_reopen(store, &reopen).await;
    let store = segments_are_listed_in_order_and_kept_apart(store).await;
    let store = a_single_segment_content_is_kept_whole(store, &reopen).await;
    let store = staged_content_lands_with_the_next_block_commit(store, &reopen).await;
    erased_content_is_gone_and_stays_gone(store, &reopen).await;
}

/// A root that differs from `base` in its last byte only: adjacent in key order.
fn neighbour(base: &ContentRoot) -> ContentRoot {
    let mut root = *base;
    root[31] = root[31].wrapping_add(1);
    root
}

async fn sealed_content_round_trips_and_survives_a_reopen<S, F, Fut>(store: S, reopen: &F) -> S
where
    S: ContentStore,
    F: Fn(S) -> Fut,
    Fut: Future<Output = S>,
{
    let key = EpochKey::generate(&mut OsRng);
    let chain = BlockId::of(b"content conformance");
    let content: Vec<u8> = (0..150_000u32).map(|i| (i % 251) as u8).collect();
    let (commitment, tree, sealed) =
        ContentWriter::seal_all(&key, [3; 16], &chain, "text/plain", &content, &mut OsRng)
            .expect("seal");
    let root = commitment.root;
    assert_eq!(
        store.tree(&root).await.expect("tree"),
        None,
        "nothing kept yet"
    );
    assert!(store.held(&root).await.expect("held").is_empty());
    assert_eq!(
        store.segment_count().await.expect("count"),
        0,
        "a new store counts no segment"
    );
    store
        .put_tree(&root, tree.leaves())
        .await
        .expect("put tree");
    // Segments arrive in any order; a segment put twice is kept once.
    for index in [2u32, 0, 1, 0] {
        let kept = store
            .put_segment(&root, index, &sealed[index as usize])
            .await
            .expect("put segment");
        assert!(kept, "segment {index} of a live content is kept");
    }
    let store = reopen(store).await;
    let leaves = store.tree(&root).await.expect("tree").expect("tree kept");
    let tree = SegmentTree::verified(&commitment, leaves).expect("the kept tree verifies");
    assert_eq!(store.held(&root).await.expect("held"), vec![0, 1, 2]);
    assert_eq!(
        store.segment_count().await.expect("count"),
        3,
        "a segment put twice is counted once, and the count survives a reopen"
    );
    let reader = ContentReader::new(&key, &chain, commitment, tree).expect("reader");
    let mut opened = Vec::new();
    for index in 0..3u32 {
        let segment = store
            .segment(&root, index)
            .await
            .expect("segment")
            .expect("segment kept");
        opened.extend(reader.open(index, &segment).expect("a kept segment opens"));
    }
    assert_eq!(opened, content, "the content read back from the store");
    store
}

async fn segments_are_listed_in_order_and_kept_apart<S: ContentStore>(store: S) -> S {
    let a = [0x40; 32];
    let b = neighbour(&a);
    let before = store.segment_count().await.expect("count");
    // Indexes whose little-endian order differs from their numeric order.
    for index in [256u32, 1, 65_536, 0, 2] {
        store
            .put_segment(&a, index, &index.to_le_bytes())
            .await
            .expect("put a");
    }
    store.put_segment(&b, 0, b"b0").await.expect("put b");
    assert_eq!(
        store.held(&a).await.expect("held a"),
        vec![0, 1, 2, 256, 65_536],
        "held segments are listed in ascending index order, and only the content's own"
    );
    assert_eq!(store.held(&b).await.expect("held b"), vec![0]);
    assert_eq!(
        store.segment(&a, 65_536).await.expect("segment"),
        Some(65_536u32.to_le_bytes().to_vec())
    );
    assert_eq!(store.segment(&a, 3).await.expect("segment"), None);
    assert_eq!(store.segment(&b, 1).await.expect("segment"), None);
    // Several at once (a fetch's batch), beside those held; none for an erased content.
    let batch: [(u32, &[u8]); 3] = [(3, b"a3"), (4, b"a4"), (7, b"a7")];
    assert!(store.put_segments(&a, &batch).await.expect("put batch"));
    assert_eq!(
        store.held(&a).await.expect("held a"),
        vec![0, 1, 2, 3, 4, 7, 256, 65_536]
    );
    assert_eq!(
        store.segment(&a, 4).await.expect("segment"),
        Some(b"a4".to_vec())
    );
    let gone = [0x41; 32];
    store.erase(&gone).await.expect("erase");
    assert!(!store.put_segments(&gone, &batch).await.expect("put erased"));
    assert!(store.held(&gone).await.expect("held").is_empty());
    // What a peer is served: the bytes, nothing, or "erased".
    let served = |root, index| store.segment_to_serve(root, index);
    assert_eq!(
        served(&a, 4).await.expect("serve"),
        Served::Segment(b"a4".to_vec())
    );
    assert_eq!(served(&a, 5).await.expect("serve"), Served::NotHeld);
    assert_eq!(served(&gone, 3).await.expect("serve"), Served::Erased);
    assert_eq!(
        store.segment_count().await.expect("count"),
        before + 9,
        "every content's segments are counted, an erased content's refused ones not"
    );
    store.erase(&b).await.expect("erase b");
    assert_eq!(
        store.segment_count().await.expect("count"),
        before + 8,
        "an erased content's segments are no longer counted"
    );
    store
}

/// Content pushed inline: tree and segment in one write, refused once erased.
async fn a_single_segment_content_is_kept_whole<S, F, Fut>(store: S, reopen: &F) -> S
where
    S: ContentStore,
    F: Fn(S) -> Fut,
    Fut: Future<Output = S>,
{
    let root = [0x70; 32];
    let leaves = [[0x71; 32], [0x72; 32]];
    assert!(store
        .put_single_segment(&root, &leaves, b"one sealed segment")
        .await
        .expect("put"));
    let store = reopen(store).await;
    assert_eq!(
        store.tree(&root).await.expect("tree"),
        Some(leaves.to_vec())
    );
    assert_eq!(store.held(&root).await.expect("held"), vec![0]);
    assert_eq!(
        store.segment(&root, 0).await.expect("segment").as_deref(),
        Some(&b"one sealed segment"[..])
    );
    store.erase(&root).await.expect("erase");
    assert!(
        !store
            .put_single_segment(&root, &leaves, b"one sealed segment")
            .await
            .expect("put"),
        "an erased content pushed again is refused"
    );
    assert_eq!(store.tree(&root).await.expect("tree"), None);
    assert!(store.held(&root).await.expect("held").is_empty());
    store
}

/// Content staged on the path of a message lands in the next block commit's transaction;
/// what no commit took is written by `flush_staged`; erased content stays erased.
async fn staged_content_lands_with_the_next_block_commit<S, F, Fut>(store: S, reopen: &F) -> S
where
    S: ContentStore + BlockStore + Clone,
    F: Fn(S) -> Fut,
    Fut: Future<Output = S>,
{
    let rules = endra::identity::rules();
    let with_block = [0x50; 32];
    let erased = [0x51; 32];
    store.erase(&erased).await.expect("erase");
    let leaves = [[0x52; 32], [0x53; 32]];
    store.stage_single_segment(&with_block, &leaves, b"a text");
    store.stage_single_segment(&erased, &leaves, b"an erased text");
    // The longest content that travels with its block: one full sealed segment.
    let full = [0x55; 32];
    let full_segment: Vec<u8> = (0..endra::offchain::SEGMENT_LEN + endra::offchain::TAG_LEN)
        .map(|i| i as u8)
        .collect();
    store.stage_single_segment(&full, &leaves, &full_segment);
    // A count staged beside them lands with them; only its last value.
    store.staging().stage_setting("staged-count", &[1]);
    store.staging().stage_setting("staged-count", &[2]);
    assert!(
        store.held(&with_block).await.expect("held").is_empty(),
        "staged, not written"
    );
    assert_eq!(store.setting("staged-count").await.expect("setting"), None);
    // Another handle's commit (a clone shares the staging) takes them.
    endra::walytis::Chain::create(
        store.clone(),
        &rules,
        &super::key(7),
        1,
        vec![],
        b"a chain".to_vec(),
    )
    .await
    .expect("create");
    let store = reopen(store).await;
    assert_eq!(store.held(&with_block).await.expect("held"), vec![0]);
    assert_eq!(
        store.tree(&with_block).await.expect("tree"),
        Some(leaves.to_vec())
    );
    assert_eq!(
        store.segment(&full, 0).await.expect("read"),
        Some(full_segment),
        "a full staged segment lands whole"
    );
    assert!(
        store.held(&erased).await.expect("held").is_empty(),
        "erased stays erased"
    );
    assert_eq!(
        store.setting("staged-count").await.expect("setting"),
        Some(vec![2]),
        "the staged setting landed with the commit"
    );
    // Staged with no commit after it: flushed on its own.
    let alone = [0x54; 32];
    store.stage_single_segment(&alone, &leaves, b"no block came");
    store.staging().stage_setting("staged-count", &[3]);
    store.flush_staged().await.expect("flush");
    assert_eq!(store.held(&alone).await.expect("held"), vec![0]);
    assert_eq!(
        store.setting("staged-count").await.expect("setting"),
        Some(vec![3])
    );
    assert!(store.staging().settings().is_empty(), "nothing left staged");
    store.flush_staged().await.expect("nothing left to flush");
    store
}

async fn erased_content_is_gone_and_stays_gone<S, F, Fut>(store: S, reopen: &F)
where
    S: ContentStore,
    F: Fn(S) -> Fut,
    Fut: Future<Output = S>,
{
    let gone = [0x90; 32];
    let kept = neighbour(&gone);
    for root in [&gone, &kept] {
        store
            .put_tree(root, &[[1; 32], [2; 32]])
            .await
            .expect("tree");
        for index in 0..2 {
            store
                .put_segment(root, index, b"sealed")
                .await
                .expect("segment");
        }
    }
    assert!(!store.is_erased(&gone).await.expect("is_erased"));
    store.erase(&gone).await.expect("erase");
    let store = reopen(store).await;
    assert!(
        store.is_erased(&gone).await.expect("is_erased"),
        "erasure is remembered"
    );
    assert_eq!(store.tree(&gone).await.expect("tree"), None);
    assert!(store.held(&gone).await.expect("held").is_empty());
    assert_eq!(store.segment(&gone, 0).await.expect("segment"), None);
    // A peer that sends the bytes again cannot bring them back.
    assert!(
        !store.put_segment(&gone, 0, b"sealed").await.expect("put"),
        "a segment of an erased content is refused"
    );
    store.put_tree(&gone, &[[1; 32]]).await.expect("put tree");
    assert_eq!(store.tree(&gone).await.expect("tree"), None);
    assert!(store.held(&gone).await.expect("held").is_empty());
    // Erasing is idempotent and touches nothing else.
    store.erase(&gone).await.expect("erase again");
    assert!(!store.is_erased(&kept).await.expect("is_erased"));
    assert_eq!(store.held(&kept).await.expect("held"), vec![0, 1]);
    assert!(store.tree(&kept).await.expect("tree").is_some());
}
