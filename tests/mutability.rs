//! Mutability, the sans-IO core: who may edit and delete, what the current version is, and
//! that every replica holding the same versions — delivered in any order, any number of
//! times — shows the same record, history and events (a property test over random version
//! graphs of three persons' devices).
#![allow(clippy::expect_used, clippy::unwrap_used)]
#![cfg(not(target_arch = "wasm32"))]

use std::collections::HashSet;

use endra::mutability::{
    erase_contents, Inserted, LogEvent, LogKind, MutabilityError, RecordEvent, RecordLog,
    RecordView, Records, Refusal, Version, VersionKind, VersionOp, LOG_PAGE, MAX_SEEN,
};
use endra::offchain::{Commitment, ContentStore};
use endra::store::MemoryStore;
use endra::walytis::{Author, BlockId, Position};
use futures_executor::block_on;
use proptest::prelude::*;

/// A device: its key, its person, whether it administers the chain's identity.
#[derive(Clone)]
struct Device {
    author: Author,
    person: String,
    admin: bool,
}

fn person(name: &str) -> String {
    format!("did:test:{name}")
}

fn device(seed: u8, person_name: &str, admin: bool) -> Device {
    Device {
        author: Author::of(&ed25519_dalek::SigningKey::from_bytes(&[seed; 32])),
        person: person(person_name),
        admin,
    }
}

/// Ada's phone and laptop (the author), Bea (a member), Cem (an admin).
fn devices() -> [Device; 4] {
    [
        device(1, "ada", false),
        device(2, "ada", false),
        device(3, "bea", false),
        device(4, "cem", true),
    ]
}

fn content(tag: u64) -> Commitment {
    let mut root = [0u8; 32];
    root[..8].copy_from_slice(&tag.to_be_bytes());
    Commitment {
        root,
        size: 10,
        epoch: [1; 16],
        nonce: [2; 32],
        media_type: "text/plain".into(),
    }
}

fn version(by: &Device, height: u64, name: &str, op: VersionOp) -> Version {
    Version {
        position: Position {
            height,
            id: BlockId::of(name.as_bytes()),
        },
        author: by.author,
        person: by.person.clone(),
        admin: by.admin,
        time: height * 1000,
        op,
    }
}

fn fold(versions: &[Version]) -> Records {
    let mut records = Records::new();
    for v in versions {
        records.insert(v.clone());
    }
    records
}

#[test]
fn version_ops_round_trip_and_malformed_ones_are_refused() {
    let record = BlockId::of(b"record");
    let seen = vec![BlockId::of(b"b"), BlockId::of(b"a")];
    for op in [
        VersionOp::create(content(1)),
        VersionOp::edit(record, seen.clone(), content(2)),
        VersionOp::delete(record, seen.clone(), false),
        VersionOp::delete(record, seen, true),
    ] {
        assert_eq!(VersionOp::decode(&op.encode()), Ok(op));
    }
    let mut descending = vec![BlockId::of(b"a"), BlockId::of(b"b")];
    descending.sort_by(|a, b| b.cmp(a));
    // Out of shape: a create naming a record, an edit that saw nothing, a delete with content,
    // seen versions out of order or too many.
    let bad = [
        VersionOp {
            record: Some(record),
            ..VersionOp::create(content(1))
        },
        VersionOp {
            seen: vec![],
            ..VersionOp::edit(record, vec![record], content(2))
        },
        VersionOp {
            content: Some(content(3)),
            ..VersionOp::delete(record, vec![record], false)
        },
        VersionOp {
            seen: descending.clone(),
            ..VersionOp::edit(record, vec![record], content(2))
        },
        VersionOp {
            seen: vec![record, record],
            ..VersionOp::edit(record, vec![record], content(2))
        },
        VersionOp::edit(
            record,
            (0..=MAX_SEEN as u32)
                .map(|n| BlockId::of(&n.to_be_bytes()))
                .collect(),
            content(2),
        ),
    ];
    for op in bad {
        assert!(
            matches!(
                VersionOp::decode(&op.encode()),
                Err(MutabilityError::Shape(_))
            ),
            "{op:?} must be refused"
        );
    }
    assert!(matches!(
        VersionOp::decode(b"not cbor"),
        Err(MutabilityError::Cbor(_))
    ));
}

#[test]
fn the_author_edits_from_any_device_others_cannot_and_an_admin_deletes() {
    let [phone, laptop, bea, cem] = devices();
    let create = version(&phone, 1, "create", VersionOp::create(content(1)));
    let record = create.id();
    let edit = version(
        &laptop,
        2,
        "laptop edit",
        VersionOp::edit(record, vec![record], content(2)),
    );
    let forged = version(
        &bea,
        3,
        "bea edit",
        VersionOp::edit(record, vec![edit.id()], content(3)),
    );
    let bea_delete = version(
        &bea,
        3,
        "bea delete",
        VersionOp::delete(record, vec![edit.id()], false),
    );
    let records = fold(&[
        create.clone(),
        edit.clone(),
        forged.clone(),
        bea_delete.clone(),
    ]);
    let view = records.record(&record).unwrap();
    assert_eq!(
        view.current,
        Some(edit.id()),
        "the laptop's edit is current"
    );
    assert_eq!(view.content, Some(content(2)));
    assert_eq!(view.author, person("ada"));
    assert_eq!(view.deleted, None);
    assert!(view.refused.contains(&(forged.id(), Refusal::NotTheAuthor)));
    assert!(view
        .refused
        .contains(&(bea_delete.id(), Refusal::NotPermitted)));
    let kinds: Vec<VersionKind> = view.history.iter().map(|h| h.kind).collect();
    assert_eq!(kinds, vec![VersionKind::Create, VersionKind::Edit]);

    let admin_delete = version(
        &cem,
        3,
        "cem delete",
        VersionOp::delete(record, vec![edit.id()], false),
    );
    let records = fold(&[create, edit, forged, admin_delete.clone()]);
    let view = records.record(&record).unwrap();
    assert_eq!(
        view.deleted,
        Some(admin_delete.id()),
        "an admin's delete is honoured"
    );
    assert_eq!(view.current, None);
    assert_eq!(view.content, None);
    assert_eq!(
        view.history.len(),
        3,
        "the deleted versions stay in the history"
    );
    assert!(view.history[..2].iter().all(|h| h.content.is_some()));
}

#[test]
fn concurrent_edits_are_conflicts_and_a_delete_beats_them() {
    let [phone, laptop, _, _] = devices();
    let create = version(&phone, 1, "create", VersionOp::create(content(1)));
    let record = create.id();
    let a = version(
        &phone,
        2,
        "a",
        VersionOp::edit(record, vec![record], content(2)),
    );
    let b = version(
        &laptop,
        2,
        "b",
        VersionOp::edit(record, vec![record], content(3)),
    );
    let records = fold(&[create.clone(), a.clone(), b.clone()]);
    let view = records.record(&record).unwrap();
    let (low, high) = if a.id() < b.id() { (&a, &b) } else { (&b, &a) };
    assert_eq!(
        view.current,
        Some(high.id()),
        "the greater head by chain order"
    );
    assert_eq!(view.conflicts, vec![low.id()]);

    // A merge that saw both resolves the conflict.
    let merge = version(
        &phone,
        3,
        "merge",
        VersionOp::edit(record, vec![a.id(), b.id()], content(4)),
    );
    let records = fold(&[create.clone(), a.clone(), b.clone(), merge.clone()]);
    let view = records.record(&record).unwrap();
    assert_eq!(view.current, Some(merge.id()));
    assert!(view.conflicts.is_empty());

    // A delete concurrent with an edit, even one later in the chain order, wins; an edit
    // that saw the delete is refused.
    let delete = version(
        &laptop,
        2,
        "delete",
        VersionOp::delete(record, vec![record], false),
    );
    let later_edit = version(
        &phone,
        5,
        "late",
        VersionOp::edit(record, vec![a.id()], content(5)),
    );
    let after = version(
        &phone,
        6,
        "after",
        VersionOp::edit(record, vec![delete.id(), later_edit.id()], content(6)),
    );
    let records = fold(&[create, a, delete.clone(), later_edit, after.clone()]);
    let view = records.record(&record).unwrap();
    assert_eq!(view.deleted, Some(delete.id()));
    assert_eq!(view.current, None);
    assert!(view.refused.contains(&(after.id(), Refusal::Deleted)));
}

#[test]
fn a_seen_version_out_of_place_is_refused_and_one_not_arrived_waits() {
    let [phone, _, _, _] = devices();
    let create = version(&phone, 1, "create", VersionOp::create(content(1)));
    let record = create.id();
    let later = version(
        &phone,
        4,
        "later",
        VersionOp::edit(record, vec![record], content(2)),
    );
    // Claims to have seen a version that comes after it in the chain order.
    let claims = version(
        &phone,
        3,
        "claims",
        VersionOp::edit(record, vec![later.id()], content(3)),
    );
    let missing = BlockId::of(b"not arrived");
    let waits = version(
        &phone,
        5,
        "waits",
        VersionOp::edit(record, vec![missing], content(4)),
    );
    let records = fold(&[create, later.clone(), claims.clone(), waits.clone()]);
    let view = records.record(&record).unwrap();
    assert!(view
        .refused
        .contains(&(claims.id(), Refusal::SeenOutOfPlace)));
    assert_eq!(view.waiting, vec![waits.id()]);
    assert_eq!(view.current, Some(later.id()));
}

#[test]
fn an_erasing_delete_drops_every_version_s_content_from_the_store_and_keeps_it_out() {
    let [phone, laptop, _, cem] = devices();
    let create = version(&phone, 1, "create", VersionOp::create(content(1)));
    let record = create.id();
    let edit = version(
        &laptop,
        2,
        "edit",
        VersionOp::edit(record, vec![record], content(2)),
    );
    let other = version(&phone, 1, "other record", VersionOp::create(content(9)));
    let erase = version(
        &cem,
        3,
        "erase",
        VersionOp::delete(record, vec![edit.id()], true),
    );
    let store = MemoryStore::new();
    block_on(async {
        for tag in [1, 2, 9] {
            let root = content(tag).root;
            store.put_tree(&root, &[[tag as u8; 32]]).await.unwrap();
            store.put_segment(&root, 0, b"sealed bytes").await.unwrap();
        }
        let records = fold(&[create, edit, other, erase]);
        assert_eq!(erase_contents(&records, &store).await.unwrap(), 2);
        for tag in [1, 2] {
            let root = content(tag).root;
            assert!(store.is_erased(&root).await.unwrap());
            assert!(store.held(&root).await.unwrap().is_empty());
            assert!(!store.put_segment(&root, 0, b"sealed bytes").await.unwrap());
        }
        assert_eq!(store.held(&content(9).root).await.unwrap(), vec![0]);
        let view = records.record(&record).unwrap();
        assert!(view.erased);
        assert!(view.history.iter().all(|h| h.content.is_none()));
        assert_eq!(view.history.iter().filter(|h| h.erased).count(), 2);
        // Erasing again erases nothing more.
        assert_eq!(erase_contents(&records, &store).await.unwrap(), 0);
    });
}

/// A random history of one record: each step a device of the four edits or deletes, having
/// seen a random non-empty set of the versions before it.
fn history() -> impl Strategy<Value = Vec<Version>> {
    let step = (
        0..4usize,
        0..10u8,
        prop::collection::vec(any::<prop::sample::Index>(), 1..4),
        0..2u64,
    );
    prop::collection::vec(step, 0..12).prop_map(|steps| {
        let devices = devices();
        let create = version(&devices[0], 1, "create", VersionOp::create(content(0)));
        let record = create.id();
        let mut versions = vec![create];
        for (n, (who, kind, picks, skip)) in steps.into_iter().enumerate() {
            let mut seen: Vec<&Version> = picks
                .iter()
                .map(|i| &versions[i.index(versions.len())])
                .collect();
            seen.sort_by_key(|v| v.id());
            seen.dedup_by_key(|v| v.id());
            let height = 1 + skip + seen.iter().map(|v| v.position.height).max().unwrap_or(0);
            let seen: Vec<BlockId> = seen.iter().map(|v| v.id()).collect();
            let op = match kind {
                0..=5 => VersionOp::edit(record, seen, content(n as u64 + 1)),
                6..=8 => VersionOp::delete(record, seen, false),
                _ => VersionOp::delete(record, seen, true),
            };
            versions.push(version(&devices[who], height, &format!("step {n}"), op));
        }
        versions
    })
}

/// Delivers `versions` in `order` (indexes, repeats allowed): the view and the events.
fn deliver(versions: &[Version], order: &[usize]) -> (RecordView, Vec<RecordEvent>) {
    let mut records = Records::new();
    let mut events = Vec::new();
    for &i in order {
        if let Inserted::New(new) = records.insert(versions[i].clone()) {
            events.extend(new);
        }
    }
    (records.record(&versions[0].id()).unwrap(), events)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn every_delivery_order_gives_every_replica_the_same_record(
        versions in history(),
        orders in prop::collection::vec((Just(()), any::<u64>()), 4),
    ) {
        let in_order: Vec<usize> = (0..versions.len()).collect();
        let (reference, reference_events) = deliver(&versions, &in_order);
        let announced: HashSet<BlockId> = reference_events.iter().map(|e| e.version).collect();
        prop_assert_eq!(announced.len(), reference_events.len(), "each version announced once");
        prop_assert_eq!(announced.len(), reference.history.len());

        for (_, seed) in orders {
            // A permutation with duplicates: every index once, then some again, shuffled.
            let mut order = in_order.clone();
            let mut state = seed | 1;
            let mut next = || { state ^= state << 13; state ^= state >> 7; state ^= state << 17; state };
            for _ in 0..versions.len() / 2 {
                let i = (next() % versions.len() as u64) as usize;
                order.push(i);
            }
            for i in (1..order.len()).rev() {
                let j = (next() % (i as u64 + 1)) as usize;
                order.swap(i, j);
            }
            let (view, events) = deliver(&versions, &order);
            prop_assert_eq!(&view, &reference);
            // Events: each valid version exactly once, every seen version before it.
            let mut before = HashSet::new();
            for event in &events {
                let version = versions.iter().find(|v| v.id() == event.version).unwrap();
                for seen in &version.op.seen {
                    if announced.contains(seen) {
                        prop_assert!(before.contains(seen), "an event before its seen version");
                    }
                }
                prop_assert!(before.insert(event.version), "an event twice");
            }
            prop_assert_eq!(before, announced.clone());
        }

        // Invariants of the rules.
        let ada = person("ada");
        for v in &versions[1..] {
            let in_history = reference.history.iter().any(|h| h.id == v.id());
            if v.op.kind == VersionKind::Edit && v.person != ada {
                prop_assert!(!in_history, "a non-author's edit is never applied");
            }
            if matches!(v.op.kind, VersionKind::Delete { .. }) && v.person != ada && !v.admin {
                prop_assert!(!in_history, "a member's delete is never applied");
            }
        }
        let valid_delete = reference.history.iter().any(|h| matches!(h.kind, VersionKind::Delete { .. }));
        prop_assert_eq!(valid_delete, reference.deleted.is_some());
        if valid_delete {
            prop_assert_eq!(reference.current, None, "a delete beats every edit");
        } else {
            prop_assert!(reference.current.is_some());
        }
        // Without the non-authors' edits (those no version names: a version naming a missing
        // one would wait for it), nothing but the refusals changes.
        let named: HashSet<BlockId> = versions.iter().flat_map(|v| v.op.seen.iter().copied()).collect();
        let honest: Vec<Version> = versions
            .iter()
            .filter(|v| !(v.op.kind == VersionKind::Edit && v.person != ada && !named.contains(&v.id())))
            .cloned()
            .collect();
        let (without, _) = deliver(&honest, &(0..honest.len()).collect::<Vec<_>>());
        prop_assert_eq!(without.current, reference.current);
        prop_assert_eq!(without.conflicts, reference.conflicts);
        prop_assert_eq!(without.deleted, reference.deleted);
        prop_assert_eq!(without.history, reference.history);
    }
}

/// A log as a restarted replica reads it back from its stored pages.
fn reloaded(pages: &std::collections::BTreeMap<u64, Vec<u8>>) -> RecordLog {
    let mut log = RecordLog::new();
    for (index, page) in pages {
        log.take_page(*index, page).unwrap();
    }
    log
}

/// Stores what an update appended, as the client does (the pages from the first new event).
fn store_pages(log: &RecordLog, from: u64, pages: &mut std::collections::BTreeMap<u64, Vec<u8>>) {
    for (index, page) in log.pages_from(from) {
        pages.insert(index, page);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// The record log over any delivery order, with contents arriving at random moments, and
    /// restarts and crashes (before the pages were written) in between: each valid version told once, after the versions it saw; each
    /// arrived content told once, after its version; a consumer that resumes from its last
    /// `seq` after a restart reads exactly what it had not read.
    #[test]
    fn record_events_are_told_once_in_causal_order_and_resume_after_a_restart(
        versions in history(),
        seed in any::<u64>(),
    ) {
        let mut state = seed | 1;
        let mut next = move || { state ^= state << 13; state ^= state >> 7; state ^= state << 17; state };
        let mut order: Vec<usize> = (0..versions.len()).collect();
        for _ in 0..versions.len() / 2 {
            order.push((next() % versions.len() as u64) as usize);
        }
        for i in (1..order.len()).rev() {
            let j = (next() % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
        let mut records = Records::new();
        let mut log = RecordLog::new();
        let mut pages = std::collections::BTreeMap::new();
        let mut arrived = HashSet::new();
        let mut read: Vec<LogEvent> = Vec::new();
        for &i in &order {
            records.insert(versions[i].clone());
            // Some contents the replica was waiting for arrive now.
            for (version, _) in log.awaited_contents(&records) {
                if next() % 3 == 0 {
                    arrived.insert(version);
                }
            }
            let new = log.update(&records, &arrived);
            if next() % 5 == 0 {
                // A crash before the pages were written: nobody read what this call appended
                // (`Account::record_events` hands out events only once stored); the next call
                // appends it again.
                log = reloaded(&pages);
                continue;
            }
            store_pages(&log, new.start, &mut pages);
            if next() % 4 == 0 {
                // A restart: the log is read back; the consumer resumes from its last seq.
                log = reloaded(&pages);
            }
            let cursor = read.last().map(|e| e.seq);
            read.extend_from_slice(log.since(cursor));
        }
        // The call after the last delivery.
        let new = log.update(&records, &arrived);
        store_pages(&log, new.start, &mut pages);
        let cursor = read.last().map(|e| e.seq);
        read.extend_from_slice(log.since(cursor));
        let view = records.record(&versions[0].id()).unwrap();
        prop_assert_eq!(read.iter().map(|e| e.seq).collect::<Vec<_>>(), (0..log.len()).collect::<Vec<_>>());
        let back = reloaded(&pages);
        prop_assert_eq!(back.since(None), log.since(None));
        let mut told = HashSet::new();
        let mut contents = HashSet::new();
        for event in &read {
            let version = versions.iter().find(|v| v.id() == event.version).unwrap();
            match event.kind {
                LogKind::Withdrawn => prop_assert!(false, "nothing is withdrawn from an insert-only fold"),
                LogKind::ContentArrived => {
                    prop_assert!(told.contains(&event.version), "a content before its version");
                    prop_assert!(contents.insert(event.version), "a content told twice");
                    prop_assert!(arrived.contains(&event.version));
                }
                kind => {
                    prop_assert_eq!(kind, match version.op.kind {
                        VersionKind::Create => LogKind::Created,
                        VersionKind::Edit => LogKind::Edited,
                        VersionKind::Delete { erase } => LogKind::Deleted { erase },
                    });
                    for seen in &version.op.seen {
                        if view.history.iter().any(|h| h.id == *seen) {
                            prop_assert!(told.contains(seen), "a version before one it saw");
                        }
                    }
                    prop_assert!(told.insert(event.version), "a version told twice");
                }
            }
        }
        let valid: HashSet<BlockId> = view.history.iter().map(|h| h.id).collect();
        prop_assert_eq!(told, valid, "every valid version told");
        // Every arrived content of a version with content is told, unless erased first.
        for h in &view.history {
            if arrived.contains(&h.id) && h.content.is_some() {
                prop_assert!(contents.contains(&h.id), "an arrived content never told");
            }
        }
    }
}

#[test]
fn a_version_no_longer_shown_is_withdrawn_and_told_again_when_it_comes_back() {
    let [phone, _, bea, _] = devices();
    let create = version(&phone, 1, "create", VersionOp::create(content(1)));
    let record = create.id();
    let note = version(&bea, 2, "bea's", VersionOp::create(content(2)));
    let edit = version(
        &phone,
        3,
        "edit",
        VersionOp::edit(record, vec![record], content(3)),
    );
    let mut log = RecordLog::new();
    let kinds = |log: &RecordLog, from: u64| -> Vec<(BlockId, LogKind)> {
        log.since(from.checked_sub(1))
            .iter()
            .map(|e| (e.version, e.kind))
            .collect()
    };
    let all = fold(&[create.clone(), note.clone(), edit.clone()]);
    let new = log.update(&all, &HashSet::from([note.id()]));
    assert_eq!(
        kinds(&log, new.start),
        vec![
            (record, LogKind::Created),
            (note.id(), LogKind::Created),
            (edit.id(), LogKind::Edited),
            (note.id(), LogKind::ContentArrived),
        ]
    );
    assert_eq!(
        log.update(&all, &HashSet::from([note.id()])),
        4..4,
        "nothing new, nothing told"
    );
    // Bea's device is removed and her note hidden: it is withdrawn, once.
    let hidden = fold(&[create.clone(), edit.clone()]);
    let new = log.update(&hidden, &HashSet::new());
    assert_eq!(
        kinds(&log, new.start),
        vec![(note.id(), LogKind::Withdrawn)]
    );
    assert!(log.update(&hidden, &HashSet::new()).is_empty());
    // Shown again (a current device built on it): told again; its content was told already.
    let new = log.update(&all, &HashSet::from([note.id()]));
    assert_eq!(kinds(&log, new.start), vec![(note.id(), LogKind::Created)]);
    // The awaited contents are the valid versions' whose arrival was not told.
    let awaited: Vec<BlockId> = log
        .awaited_contents(&all)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(awaited, vec![record, edit.id()]);
}

#[test]
fn a_damaged_log_page_is_a_typed_error_and_changes_nothing() {
    let [phone, ..] = devices();
    let versions: Vec<Version> = (0..LOG_PAGE as u64 + 10)
        .map(|n| {
            version(
                &phone,
                n + 1,
                &format!("post {n}"),
                VersionOp::create(content(n)),
            )
        })
        .collect();
    let mut log = RecordLog::new();
    log.update(&fold(&versions), &HashSet::new());
    let pages = log.pages_from(0);
    assert_eq!(
        pages.len(),
        2,
        "{} events in pages of {LOG_PAGE}",
        log.len()
    );
    assert_eq!(log.open_page(), 1);
    // Truncated, or a page in the wrong place: refused with a typed error.
    let mut fresh = RecordLog::new();
    let (_, first) = &pages[0];
    assert!(matches!(
        fresh.take_page(0, &first[..first.len() - 3]),
        Err(MutabilityError::Cbor(_) | MutabilityError::Link(_))
    ));
    assert!(matches!(
        fresh.take_page(1, &pages[1].1),
        Err(MutabilityError::Shape(_))
    ));
    assert!(fresh.is_empty(), "nothing taken from a refused page");
    fresh.take_page(0, first).unwrap();
    fresh.take_page(1, &pages[1].1).unwrap();
    assert_eq!(fresh.since(None), log.since(None));
    // Taking a page again (another handle wrote nothing new) changes nothing.
    fresh.take_page(1, &pages[1].1).unwrap();
    assert_eq!(fresh.len(), log.len());
}
