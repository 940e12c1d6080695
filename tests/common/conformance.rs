//! The store conformance suite: every `BlockStore` must pass it (memory and redb natively,
//! IndexedDB in headless Chromium). Each check panics with a message naming what broke.

use std::future::Future;

use endra::store::{BlockRecord, BlockStore, ChainState, Commit, StoreError};
use endra::walytis::{Author, Block, BlockId, Chain, ChainError, Entry, Position, Query};

use super::{key, random_dag, Rng};

fn ids(entries: &[Entry]) -> Vec<BlockId> {
    entries.iter().map(|e| e.block.id()).collect()
}

/// Runs the whole suite. `reopen` closes a handle and opens the same database again.
pub async fn run<S, F, Fut>(store: S, reopen: F)
where
    S: BlockStore + Clone,
    F: Fn(S) -> Fut,
    Fut: Future<Output = S>,
{
    let store = appends_reads_and_reopens(store, &reopen).await;
    let store = out_of_order_inserts_match_in_order(store).await;
    let store = stale_commit_is_refused_whole(store).await;
    let store = signed_blocks_survive_another_writer(store).await;
    let store = queries_page_and_filter(store).await;
    settings_round_trip(store, &reopen).await;
}

async fn appends_reads_and_reopens<S, F, Fut>(store: S, reopen: &F) -> S
where
    S: BlockStore + Clone,
    F: Fn(S) -> Fut,
    Fut: Future<Output = S>,
{
    let writer = key(7);
    let mut chain = Chain::create(
        store.clone(),
        &endra::identity::rules(),
        &writer,
        1,
        vec!["g".into()],
        b"genesis".to_vec(),
    )
    .await
    .expect("create chain");
    let id = chain.id();
    let mut appended = Vec::new();
    for round in 0..5u64 {
        let items = (0..20)
            .map(|i| {
                (
                    format!("r{round} b{i}").into_bytes(),
                    vec![format!("topic{}", i % 2)],
                )
            })
            .collect();
        appended.extend(
            chain
                .append(&writer, 10 + round, items)
                .await
                .expect("append"),
        );
    }
    assert_eq!(chain.len(), 101, "genesis + 100 appended");
    let seqs: Vec<u64> = appended.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=100).collect::<Vec<_>>(),
        "sequence numbers follow arrival"
    );
    let last = appended.last().expect("appended").block.id();
    assert_eq!(chain.leaves(), &[last], "a line of appends has one leaf");

    let order = chain
        .blocks(Query {
            limit: 1000,
            ..Query::default()
        })
        .await
        .expect("scan order");
    assert_eq!(order.len(), 101);
    assert_eq!(order[0].block.id(), id, "the genesis comes first");
    let body = chain.block(&last).await.expect("read").expect("present");
    assert_eq!(body.block.body(), b"r4 b19");
    assert!(chain
        .block(&BlockId::of(b"nothing"))
        .await
        .expect("read")
        .is_none());
    drop(chain);

    let store = reopen(store).await;
    assert_eq!(store.chains().await.expect("chains"), vec![id]);
    let chain = Chain::open(store.clone(), &endra::identity::rules(), id)
        .await
        .expect("reopen chain");
    assert_eq!(chain.len(), 101, "count survives reopening");
    assert_eq!(chain.leaves(), &[last], "leaves survive reopening");
    let again = chain
        .blocks(Query {
            limit: 1000,
            ..Query::default()
        })
        .await
        .expect("scan after reopen");
    assert_eq!(ids(&again), ids(&order), "order survives reopening");
    let unknown = Chain::open(
        store.clone(),
        &endra::identity::rules(),
        BlockId::of(b"no chain"),
    )
    .await;
    assert!(
        matches!(unknown, Err(ChainError::UnknownChain(_))),
        "{unknown:?}"
    );
    store
}

/// Two replicas get the same blocks in different orders and end identical.
async fn out_of_order_inserts_match_in_order<S: BlockStore + Clone>(store: S) -> S {
    let (genesis, blocks) = random_dag(99, 4, 120);
    let mut reference: Chain<endra::store::MemoryStore> = Chain::from_genesis(
        endra::store::MemoryStore::new(),
        &endra::identity::rules(),
        genesis.clone(),
    )
    .await
    .expect("reference");
    reference
        .insert(blocks.iter().map(Block::bytes))
        .await
        .expect("insert in order");

    let mut chain = Chain::from_genesis(store.clone(), &endra::identity::rules(), genesis)
        .await
        .expect("replica");
    let mut shuffled = blocks.clone();
    Rng::new(5).shuffle(&mut shuffled);
    // Offer in small batches, so most blocks wait for parents from a later batch.
    let mut delivered = Vec::new();
    for batch in shuffled.chunks(7) {
        let report = chain
            .insert(batch.iter().map(Block::bytes))
            .await
            .expect("insert");
        assert!(report.rejected.is_empty(), "{:?}", report.rejected);
        delivered.extend(report.accepted.into_iter().map(|e| e.block.id()));
    }
    assert_eq!(chain.pending_len(), 0, "every block found its parents");
    assert_eq!(chain.len(), reference.len());
    assert_eq!(chain.leaves(), reference.leaves());
    let all = Query {
        limit: 10_000,
        ..Query::default()
    };
    let mine = chain.blocks(all).await.expect("scan");
    let theirs = reference.blocks(all).await.expect("scan");
    assert_eq!(
        ids(&mine),
        ids(&theirs),
        "same order whatever the arrival order"
    );

    // `since` replays arrival order: each block once, parents first.
    let mut seen = std::collections::HashSet::new();
    let mut cursor = None;
    loop {
        let page = chain.since(cursor, 16).await.expect("since");
        let Some(last) = page.last() else { break };
        cursor = Some(last.seq);
        for entry in &page {
            for parent in entry.block.parents() {
                assert!(seen.contains(parent), "parent {parent} after child");
            }
            assert!(seen.insert(entry.block.id()), "block delivered twice");
        }
    }
    assert_eq!(seen.len() as u64, chain.len());
    store
}

async fn stale_commit_is_refused_whole<S: BlockStore + Clone>(store: S) -> S {
    let writer = key(3);
    let mut first = Chain::create(
        store.clone(),
        &endra::identity::rules(),
        &writer,
        5,
        vec![],
        b"conflict".to_vec(),
    )
    .await
    .expect("create");
    let id = first.id();
    let mut second = Chain::open(store.clone(), &endra::identity::rules(), id)
        .await
        .expect("second handle");
    first
        .append(&writer, 6, vec![(b"from first".to_vec(), vec![])])
        .await
        .expect("first writes");
    // A raw commit built on the old state must be refused, and write nothing.
    let (_, stray) = random_dag(1, 1, 1);
    let stale = Commit {
        chain: id,
        expected: Some(ChainState {
            next_seq: 1,
            leaves: vec![id],
        }),
        blocks: vec![],
        state: ChainState {
            next_seq: 1,
            leaves: vec![stray[0].id()],
        },
    };
    assert_eq!(
        store.commit(&stale).await,
        Err(StoreError::Conflict { chain: id })
    );
    // The second handle's stale view is refreshed and its append lands on top.
    let entries = second
        .append(&writer, 7, vec![(b"from second".to_vec(), vec![])])
        .await
        .expect("second writes after a conflict");
    assert_eq!(entries[0].seq, 2, "appended after the first handle's block");
    first.refresh().await.expect("refresh");
    assert_eq!(first.len(), 3);
    assert_eq!(first.leaves(), &[entries[0].block.id()]);

    // A commit on the current state that repeats a stored block is refused too.
    let state = store.chain_state(&id).await.expect("state").expect("chain");
    let held = &entries[0].block;
    let repeat = Commit {
        chain: id,
        expected: Some(state.clone()),
        blocks: vec![BlockRecord {
            id: held.id(),
            seq: state.next_seq,
            height: held.height(),
            author: held.author(),
            topics: held.topics().to_vec(),
            bytes: held.bytes().to_vec(),
        }],
        state: ChainState {
            next_seq: state.next_seq + 1,
            leaves: state.leaves.clone(),
        },
    };
    assert_eq!(
        store.commit(&repeat).await,
        Err(StoreError::Conflict { chain: id })
    );
    // A new handle knows nothing of the stored blocks: offered one again, it stores no copy.
    let mut third = Chain::open(store.clone(), &endra::identity::rules(), id)
        .await
        .expect("third handle");
    let report = third.insert([held.bytes()]).await.expect("insert");
    assert_eq!(report.duplicates, vec![held.id()]);
    assert!(report.accepted.is_empty());
    assert_eq!(third.len(), 3);
    assert_eq!(third.since(Some(1), 10).await.expect("since").len(), 1);
    store
}

/// A block signed (and perhaps already sent to peers) before another writer changed the
/// chain is stored as it is, beside that writer's block: never signed a second time.
async fn signed_blocks_survive_another_writer<S: BlockStore + Clone>(store: S) -> S {
    let writer = key(4);
    let mut node = Chain::create(
        store.clone(),
        &endra::identity::rules(),
        &writer,
        5,
        vec![],
        b"signed".to_vec(),
    )
    .await
    .expect("create");
    let id = node.id();
    let mut tab = Chain::open(store.clone(), &endra::identity::rules(), id)
        .await
        .expect("other handle");
    let signed = node
        .sign(&writer, 6, &[(b"sent first".to_vec(), vec![])])
        .await
        .expect("sign");
    let other = tab
        .append(&writer, 6, vec![(b"from the other tab".to_vec(), vec![])])
        .await
        .expect("other writes");
    let stored = node.store_signed(signed.clone()).await.expect("store");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].block, signed[0], "the very block that was signed");
    assert_eq!(stored[0].seq, 2, "after the other tab's block");
    assert_eq!(
        stored[0].block.parents(),
        other[0].block.parents(),
        "siblings: both on the genesis"
    );
    assert_eq!(node.len(), 3);
    let mut leaves = vec![signed[0].id(), other[0].block.id()];
    leaves.sort();
    assert_eq!(node.leaves(), leaves.as_slice());
    // Stored again (the other tab got it from a peer first): read back, not duplicated.
    let again = tab.store_signed(signed.clone()).await.expect("store again");
    assert_eq!(again[0].seq, 2);
    tab.refresh().await.expect("refresh");
    assert_eq!(tab.len(), 3);
    store
}

async fn queries_page_and_filter<S: BlockStore + Clone>(store: S) -> S {
    let (alice, bob) = (key(11), key(12));
    let mut chain = Chain::create(
        store.clone(),
        &endra::identity::rules(),
        &alice,
        1,
        vec![],
        vec![],
    )
    .await
    .expect("create");
    for i in 0..30u64 {
        let writer = if i % 3 == 0 { &bob } else { &alice };
        let topics = if i % 2 == 0 {
            vec!["even".to_string()]
        } else {
            vec!["odd".into(), "x".into()]
        };
        chain
            .append(writer, i, vec![(i.to_be_bytes().to_vec(), topics)])
            .await
            .expect("append");
    }
    let all = chain
        .blocks(Query {
            limit: 100,
            ..Query::default()
        })
        .await
        .expect("all");
    assert_eq!(all.len(), 31);
    let positions: Vec<Position> = all.iter().map(|e| e.block.position()).collect();
    let mut sorted = positions.clone();
    sorted.sort();
    assert_eq!(positions, sorted, "scan walks (height, id) order");

    // Paging forward and backward covers everything exactly once.
    let mut forward = Vec::new();
    let mut after = None;
    loop {
        let page = chain
            .blocks(Query {
                after,
                limit: 4,
                ..Query::default()
            })
            .await
            .expect("page");
        let Some(last) = page.last() else { break };
        after = Some(last.block.position());
        forward.extend(ids(&page));
    }
    assert_eq!(forward, ids(&all));
    let mut backward = Vec::new();
    let mut after = None;
    loop {
        let query = Query {
            after,
            limit: 5,
            reverse: true,
            ..Query::default()
        };
        let page = chain.blocks(query).await.expect("page");
        let Some(last) = page.last() else { break };
        after = Some(last.block.position());
        backward.extend(ids(&page));
    }
    backward.reverse();
    assert_eq!(backward, ids(&all), "reverse paging is the mirror image");

    let even = chain
        .blocks(Query {
            topic: Some("even"),
            limit: 100,
            ..Query::default()
        })
        .await
        .expect("topic");
    assert_eq!(even.len(), 15);
    assert!(even.iter().all(|e| e.block.topics() == ["even"]));
    let odd_desc = chain
        .blocks(Query {
            topic: Some("odd"),
            reverse: true,
            limit: 3,
            ..Query::default()
        })
        .await
        .expect("topic reverse");
    assert_eq!(
        ids(&odd_desc),
        ids(&all)
            .into_iter()
            .rev()
            .filter(|id| {
                all.iter()
                    .any(|e| e.block.id() == *id && e.block.topics().contains(&"odd".to_string()))
            })
            .take(3)
            .collect::<Vec<_>>()
    );
    // "od" is a prefix of "odd" and must not match it.
    let none = chain
        .blocks(Query {
            topic: Some("od"),
            limit: 100,
            ..Query::default()
        })
        .await
        .expect("prefix");
    assert!(none.is_empty(), "topic match is exact");

    let bob_author = Author::of(&bob);
    let by_bob = chain
        .blocks(Query {
            author: Some(&bob_author),
            limit: 100,
            ..Query::default()
        })
        .await
        .expect("author");
    assert_eq!(by_bob.len(), 10);
    assert!(by_bob.iter().all(|e| e.block.author() == bob_author));
    let bob_even = chain
        .blocks(Query {
            author: Some(&bob_author),
            topic: Some("even"),
            limit: 100,
            ..Query::default()
        })
        .await
        .expect("author and topic");
    assert_eq!(bob_even.len(), 5);
    store
}

async fn settings_round_trip<S, F, Fut>(store: S, reopen: &F)
where
    S: BlockStore + Clone,
    F: Fn(S) -> Fut,
    Fut: Future<Output = S>,
{
    assert_eq!(store.setting("k").await.expect("get"), None);
    store.put_setting("k", b"v1").await.expect("put");
    store.put_setting("k", b"v2").await.expect("overwrite");
    let store = reopen(store).await;
    assert_eq!(store.setting("k").await.expect("get"), Some(b"v2".to_vec()));
}
