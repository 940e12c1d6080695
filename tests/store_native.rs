//! The store conformance suite on the native stores, and how they meet damaged files.
#![allow(clippy::expect_used, clippy::unwrap_used)]
#![cfg(not(target_arch = "wasm32"))]

mod common;

use endra::store::{BlockStore, MemoryStore, RedbStore, StoreError};
use endra::walytis::{Chain, ChainError};
use futures_executor::block_on;
use redb::ReadableTable;

#[test]
fn memory_store_conforms() {
    // Reopening a memory store is handing out another handle on the same data.
    block_on(common::conformance::run(
        MemoryStore::new(),
        |s| async move { s },
    ));
}

#[test]
fn redb_store_conforms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("endra.redb");
    let store = RedbStore::open(&path).expect("open");
    block_on(common::conformance::run(store, |s| {
        drop(s);
        let path = path.clone();
        async move { RedbStore::open(&path).expect("reopen") }
    }));
}

#[test]
fn memory_content_store_conforms() {
    block_on(common::content_conformance::run(
        MemoryStore::new(),
        |s| async move { s },
    ));
}

#[test]
fn redb_content_store_conforms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("content.redb");
    let store = RedbStore::open(&path).expect("open");
    block_on(common::content_conformance::run(store, |s| {
        drop(s);
        let path = path.clone();
        async move { RedbStore::open(&path).expect("reopen") }
    }));
}

#[test]
fn a_file_that_is_not_a_database_is_reported_as_corrupt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("garbage.redb");
    std::fs::write(&path, vec![0x5a; 8192]).expect("write");
    let error = RedbStore::open(&path).expect_err("garbage must not open");
    assert!(matches!(error, StoreError::Corrupt(_)), "{error:?}");
}

#[test]
fn a_database_of_another_program_is_reported_as_foreign() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("other.redb");
    {
        let db = redb::Database::create(&path).expect("create");
        let tx = db.begin_write().expect("tx");
        let table: redb::TableDefinition<&str, &str> = redb::TableDefinition::new("users");
        tx.open_table(table)
            .expect("table")
            .insert("alice", "x")
            .expect("insert");
        tx.commit().expect("commit");
    }
    let error = RedbStore::open(&path).expect_err("foreign database must not open");
    assert_eq!(error, StoreError::Foreign { found: None });
}

#[test]
fn a_damaged_block_record_is_reported_not_returned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("endra.redb");
    let key = common::key(1);
    let (id, block) = block_on(async {
        let store = RedbStore::open(&path).expect("open");
        let mut chain = Chain::create(store, &endra::identity::rules(), &key, 1, vec![], vec![])
            .await
            .expect("create");
        let entry = chain
            .append(&key, 2, vec![(b"precious".to_vec(), vec![])])
            .await
            .expect("append");
        (chain.id(), entry[0].block.id())
    });
    // Flip the body's bytes inside the stored record.
    {
        let db = redb::Database::create(&path).expect("open raw");
        let table: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("blocks");
        let tx = db.begin_write().expect("tx");
        {
            let mut blocks = tx.open_table(table).expect("table");
            let mut key = id.as_bytes().to_vec();
            key.extend_from_slice(block.as_bytes());
            let mut value = blocks
                .get(key.as_slice())
                .expect("get")
                .expect("present")
                .value()
                .to_vec();
            let at = value
                .windows(8)
                .position(|w| w == b"precious")
                .expect("body in record");
            value[at] ^= 0xff;
            blocks
                .insert(key.as_slice(), value.as_slice())
                .expect("put back");
        }
        tx.commit().expect("commit");
    }
    block_on(async {
        let store = RedbStore::open(&path).expect("reopen");
        let chain = Chain::open(store, &endra::identity::rules(), id)
            .await
            .expect("chain still opens");
        let error = chain
            .block(&block)
            .await
            .expect_err("damaged block must not be returned");
        assert!(
            matches!(error, ChainError::Store(StoreError::Corrupt(_))),
            "{error:?}"
        );
    });
}

#[test]
fn memory_store_chains_are_shared_between_clones() {
    let store = MemoryStore::new();
    let key = common::key(2);
    let id = block_on(Chain::create(
        store.clone(),
        &endra::identity::rules(),
        &key,
        0,
        vec![],
        vec![],
    ))
    .expect("create")
    .id();
    assert_eq!(block_on(store.chains()).expect("chains"), vec![id]);
}
