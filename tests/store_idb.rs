//! The store conformance suite on IndexedDB, in headless Chromium, and how the IndexedDB
//! store meets databases it did not write.
#![allow(clippy::expect_used, clippy::unwrap_used)]
#![cfg(target_arch = "wasm32")]

mod common;

use endra::offchain::ContentStore;
use endra::store::{BlockStore, IdbStore, MemoryStore, StoreError};
use endra::walytis::{Chain, ChainError};
use indexed_db_futures::database::Database;
use indexed_db_futures::prelude::*;
use indexed_db_futures::transaction::TransactionMode;
use wasm_bindgen::JsValue;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn unique(name: &str) -> String {
    format!("{name}-{}", js_sys::Math::random())
}

#[wasm_bindgen_test]
async fn indexed_db_store_conforms() {
    let name = unique("conformance");
    let store = IdbStore::open(&name).await.expect("open");
    common::conformance::run(store, |s| {
        drop(s);
        let name = name.clone();
        async move { IdbStore::open(&name).await.expect("reopen") }
    })
    .await;
    IdbStore::delete(&name).await.expect("delete");
}

#[wasm_bindgen_test]
async fn indexed_db_content_store_conforms() {
    let name = unique("content");
    let store = IdbStore::open(&name).await.expect("open");
    common::content_conformance::run(store, |s| {
        drop(s);
        let name = name.clone();
        async move { IdbStore::open(&name).await.expect("reopen") }
    })
    .await;
    IdbStore::delete(&name).await.expect("delete");
}

#[wasm_bindgen_test]
async fn a_database_of_the_first_version_is_upgraded_and_keeps_its_chains() {
    // A version 1 database as the first releases wrote it: no content stores yet.
    let name = unique("v1");
    let db = Database::open(format!("endra:{name}").as_str())
        .with_version(1u32)
        .with_on_upgrade_needed(|_, db| {
            let blocks = db.create_object_store("blocks").build()?;
            blocks
                .create_index("order", "o".into())
                .with_unique(true)
                .build()?;
            blocks
                .create_index("seq", "s".into())
                .with_unique(true)
                .build()?;
            blocks.create_index("author", "a".into()).build()?;
            blocks
                .create_index("topic", "t".into())
                .with_multi_entry(true)
                .build()?;
            db.create_object_store("chains").build()?;
            db.create_object_store("settings").build()?;
            let meta = db.create_object_store("meta").build()?;
            drop(
                meta.put(JsValue::from_str(endra::store::FORMAT))
                    .with_key(JsValue::from_str("format"))
                    .primitive()?,
            );
            Ok(())
        })
        .await
        .expect("create a version 1 database");
    db.close();
    let store = IdbStore::open(&name)
        .await
        .expect("a version 1 database opens");
    let writer = common::key(3);
    let chain = Chain::create(
        store.clone(),
        &endra::identity::rules(),
        &writer,
        1,
        vec![],
        b"genesis".to_vec(),
    )
    .await
    .expect("create");
    let id = chain.id();
    // The chain holds a handle on the database too: every one must close before the delete.
    drop(chain);
    drop(store);
    let store = IdbStore::open(&name).await.expect("reopen");
    assert_eq!(store.chains().await.expect("chains"), vec![id]);
    let root = [5; 32];
    assert!(store.put_segment(&root, 0, b"sealed").await.expect("put"));
    assert_eq!(store.held(&root).await.expect("held"), vec![0]);
    drop(store);
    IdbStore::delete(&name).await.expect("delete");
}

#[wasm_bindgen_test]
async fn memory_store_conforms_in_the_browser() {
    common::conformance::run(MemoryStore::new(), |s| async move { s }).await;
}

#[wasm_bindgen_test]
async fn a_database_of_another_program_is_reported_as_foreign() {
    let name = unique("foreign");
    let db = Database::open(format!("endra:{name}").as_str())
        .with_version(1u32)
        .with_on_upgrade_needed(|_, db| {
            db.create_object_store("users").build()?;
            Ok(())
        })
        .await
        .expect("create foreign database");
    db.close();
    let error = IdbStore::open(&name)
        .await
        .expect_err("foreign database must not open");
    assert_eq!(error, StoreError::Foreign { found: None });

    let newer = unique("newer");
    let db = Database::open(format!("endra:{newer}").as_str())
        .with_version(9u32)
        .await
        .expect("create newer database");
    db.close();
    let error = IdbStore::open(&newer)
        .await
        .expect_err("newer database must not open");
    assert_eq!(error, StoreError::Foreign { found: None });
}

#[wasm_bindgen_test]
async fn a_damaged_block_record_is_reported_not_returned() {
    let name = unique("damaged");
    let key = common::key(1);
    let store = IdbStore::open(&name).await.expect("open");
    let mut chain = Chain::create(
        store.clone(),
        &endra::identity::rules(),
        &key,
        1,
        vec![],
        vec![],
    )
    .await
    .expect("create");
    let entry = chain
        .append(&key, 2, vec![(b"precious".to_vec(), vec![])])
        .await
        .expect("append");
    let id = entry[0].block.id();

    // Overwrite the record's value with bytes that are not a block.
    let db = Database::open(format!("endra:{name}").as_str())
        .await
        .expect("raw open");
    let tx = db
        .transaction("blocks")
        .with_mode(TransactionMode::Readwrite)
        .build()
        .expect("tx");
    let blocks = tx.object_store("blocks").expect("store");
    let mut raw_key = chain.id().as_bytes().to_vec();
    raw_key.extend_from_slice(id.as_bytes());
    let record = js_sys::Object::new();
    js_sys::Reflect::set(
        &record,
        &"v".into(),
        &js_sys::Uint8Array::from(&[0u8; 20][..]).into(),
    )
    .expect("set");
    blocks
        .put(JsValue::from(record))
        .with_key(JsValue::from(js_sys::Uint8Array::from(raw_key.as_slice())))
        .primitive()
        .expect("put")
        .await
        .expect("put done");
    tx.commit().await.expect("commit");

    let error = chain
        .block(&id)
        .await
        .expect_err("damaged block must not be returned");
    assert!(
        matches!(error, ChainError::Store(StoreError::Corrupt(_))),
        "{error:?}"
    );
    // The rest of the chain is still readable.
    assert!(chain.block(&chain.id()).await.expect("genesis").is_some());
    assert_eq!(store.chains().await.expect("chains"), vec![chain.id()]);
}
