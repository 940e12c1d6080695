//! One conformance suite for the chain-like interface of three layers — Walytis blocks,
//! Offchain private contents and Mutability records — as the original stack's generic
//! blockchain test did: append, read back, order, notification exactly once, reload.
//!
//! Each layer is wrapped in a [`ChainLike`] adapter; [`conformance`] runs the same steps
//! and asserts the same things on each, against a store that outlives the handle.
#![allow(clippy::expect_used, clippy::unwrap_used)]
#![cfg(not(target_arch = "wasm32"))]

mod common;

use common::client::{reopen, Device, T0, TEST_KEYRING};
use ed25519_dalek::SigningKey;
use endra::client::Account;
use endra::identity::rules;
use endra::mutability::LogKind;
use endra::store::MemoryStore;
use endra::walytis::{BlockId, Chain, Query};
use futures_executor::block_on;
use rand_core::OsRng;

/// What the suite asks of a layer.
#[allow(async_fn_in_trait)]
trait ChainLike: Sized {
    /// Appends an item; its name.
    async fn append(&mut self, item: &[u8]) -> BlockId;
    /// An item read back by name.
    async fn read(&mut self, id: &BlockId) -> Option<Vec<u8>>;
    /// Every item's name, in the layer's order.
    async fn ids(&mut self) -> Vec<BlockId>;
    /// What the layer notified after `cursor` (everything if `None`): `(cursor, item)`.
    async fn notified(&mut self, after: Option<u64>) -> Vec<(u64, BlockId)>;
    /// The handle dropped, and the layer opened again from the same store.
    async fn reload(self) -> Self;
}

async fn conformance<C: ChainLike>(mut layer: C, what: &str) {
    assert!(
        layer.ids().await.is_empty(),
        "{what}: a new chain holds no item"
    );
    assert!(
        layer.notified(None).await.is_empty(),
        "{what}: nothing notified yet"
    );
    let items: Vec<Vec<u8>> = (0..5u8)
        .map(|n| format!("item {n} of {what}").into_bytes())
        .collect();
    let mut ids = Vec::new();
    for item in &items {
        ids.push(layer.append(item).await);
    }
    // Read back, in order.
    for (id, item) in ids.iter().zip(&items) {
        assert_eq!(
            layer.read(id).await.as_ref(),
            Some(item),
            "{what}: read back"
        );
    }
    assert_eq!(
        layer.read(&BlockId::of(b"no such item")).await,
        None,
        "{what}"
    );
    assert_eq!(layer.ids().await, ids, "{what}: in the order appended");
    // Notified once each, in order, and nothing after the last cursor.
    let notified = layer.notified(None).await;
    let notified_ids: Vec<BlockId> = notified.iter().map(|(_, id)| *id).collect();
    assert_eq!(
        notified_ids, ids,
        "{what}: each item notified once, in order"
    );
    assert!(
        notified.windows(2).all(|w| w[0].0 < w[1].0),
        "{what}: cursors grow"
    );
    let last = notified.last().map(|(cursor, _)| *cursor);
    assert!(
        layer.notified(last).await.is_empty(),
        "{what}: nothing twice"
    );
    let (second, _) = notified[1];
    assert_eq!(
        layer.notified(Some(second)).await,
        notified[2..],
        "{what}: resumed from a cursor"
    );

    // Reloaded: the same items, order and notifications under the same cursors.
    let mut layer = layer.reload().await;
    for (id, item) in ids.iter().zip(&items) {
        assert_eq!(
            layer.read(id).await.as_ref(),
            Some(item),
            "{what}: read after reload"
        );
    }
    assert_eq!(layer.ids().await, ids, "{what}: order after reload");
    assert_eq!(
        layer.notified(None).await,
        notified,
        "{what}: notified the same after reload"
    );
    assert!(
        layer.notified(last).await.is_empty(),
        "{what}: nothing again after reload"
    );
    let more = layer.append(b"after the reload").await;
    let after = layer.notified(last).await;
    assert_eq!(
        after.iter().map(|(_, id)| *id).collect::<Vec<_>>(),
        vec![more],
        "{what}: only the new item"
    );
    assert!(
        after[0].0 > last.unwrap(),
        "{what}: numbered after the last"
    );
}

/// Walytis: items are block bodies; notification is the store's arrival order (`seq`).
struct Blocks {
    chain: Chain<MemoryStore>,
    key: SigningKey,
    time: u64,
}

impl ChainLike for Blocks {
    async fn append(&mut self, item: &[u8]) -> BlockId {
        self.time += 1;
        let entries = self
            .chain
            .append(&self.key, self.time, vec![(item.to_vec(), Vec::new())])
            .await
            .unwrap();
        entries[0].block.id()
    }

    async fn read(&mut self, id: &BlockId) -> Option<Vec<u8>> {
        let entry = self.chain.block(id).await.unwrap()?;
        Some(entry.block.body().to_vec())
    }

    async fn ids(&mut self) -> Vec<BlockId> {
        let query = Query {
            limit: usize::MAX,
            ..Query::default()
        };
        let entries = self.chain.blocks(query).await.unwrap();
        entries
            .iter()
            .map(|e| e.block.id())
            .filter(|id| *id != self.chain.id())
            .collect()
    }

    async fn notified(&mut self, after: Option<u64>) -> Vec<(u64, BlockId)> {
        let entries = self.chain.since(after, usize::MAX).await.unwrap();
        entries
            .iter()
            .filter(|e| e.block.id() != self.chain.id())
            .map(|e| (e.seq, e.block.id()))
            .collect()
    }

    async fn reload(self) -> Self {
        let (store, id) = (self.chain.store().clone(), self.chain.id());
        drop(self.chain);
        let chain = Chain::open(store, &rules(), id).await.unwrap();
        Blocks { chain, ..self }
    }
}

/// Which layer an [`Ada`] adapter shows.
#[derive(Clone, Copy)]
enum Layer {
    /// Offchain: an item is a private content, named by the version that commits to it;
    /// notified when its content is all here.
    Offchain,
    /// Mutability: an item is a record, read as its current content; notified when it is
    /// created.
    Mutability,
}

/// A person's device posting to its default bound chain.
struct Ada {
    account: Device,
    keys: MemoryStore,
    chain: BlockId,
    layer: Layer,
    time: u64,
}

impl Ada {
    async fn new(layer: Layer) -> Self {
        let keys = MemoryStore::new();
        let device = TEST_KEYRING
            .unlock(&keys, "pass", &mut OsRng)
            .await
            .unwrap();
        let mut account = Account::create(
            MemoryStore::new(),
            device,
            common::client::person("Ada"),
            T0,
            &mut OsRng,
        )
        .await
        .unwrap();
        account.take_outbox();
        let chain = account.default_chain().unwrap();
        Ada {
            account,
            keys,
            chain,
            layer,
            time: T0,
        }
    }
}

impl ChainLike for Ada {
    async fn append(&mut self, item: &[u8]) -> BlockId {
        self.time += 1;
        let id = self
            .account
            .post(&self.chain, item, "text/plain", self.time, &mut OsRng)
            .await
            .unwrap();
        self.account.take_outbox();
        id
    }

    async fn read(&mut self, id: &BlockId) -> Option<Vec<u8>> {
        let view = self.account.record_of(&self.chain, id).await.unwrap()?;
        let content = match self.layer {
            Layer::Offchain => view.history.first()?.content.clone()?,
            Layer::Mutability => view.content?,
        };
        Some(self.account.content(&self.chain, &content).await.unwrap())
    }

    async fn ids(&mut self) -> Vec<BlockId> {
        self.account
            .records_of(&self.chain)
            .await
            .unwrap()
            .records()
    }

    async fn notified(&mut self, after: Option<u64>) -> Vec<(u64, BlockId)> {
        let wanted = match self.layer {
            Layer::Offchain => LogKind::ContentArrived,
            Layer::Mutability => LogKind::Created,
        };
        let events = self
            .account
            .record_events(&self.chain, after)
            .await
            .unwrap();
        events
            .iter()
            .filter(|e| e.kind == wanted)
            .map(|e| (e.seq, e.version))
            .collect()
    }

    async fn reload(self) -> Self {
        let account = reopen(self.account, &self.keys, self.chain).await;
        Ada { account, ..self }
    }
}

#[test]
fn walytis_blocks_conform() {
    block_on(async {
        let key = common::key(7);
        let chain = Chain::create(MemoryStore::new(), &rules(), &key, T0, vec![], vec![])
            .await
            .unwrap();
        conformance(
            Blocks {
                chain,
                key,
                time: T0,
            },
            "walytis",
        )
        .await;
    });
}

#[test]
fn offchain_contents_conform() {
    block_on(async { conformance(Ada::new(Layer::Offchain).await, "offchain").await });
}

#[test]
fn mutability_records_conform() {
    block_on(async { conformance(Ada::new(Layer::Mutability).await, "mutability").await });
}
