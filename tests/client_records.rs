//! Records natively, through the client layer: devices on separate stores post, edit and
//! delete private content; blocks travel through outboxes and content through the
//! transfer core (`Fetch` asking, `serve` answering), as the shell will carry them. Each
//! scenario asserts what a device shows, and what its store holds.
#![allow(clippy::expect_used, clippy::unwrap_used)]
#![cfg(not(target_arch = "wasm32"))]

mod common;

use common::client::{deliver, join, join_keeping_keys, new_person, reopen, Device, T0};
use endra::client::ClientError;
use endra::envelope::Envelope;
use endra::mutability::{LogEvent, LogKind, RecordId, VersionKind};
use endra::offchain::{
    erase_on_request, serve, Commitment, ContentRequest, ContentResponse, ContentStatus,
    ContentStore, OffchainError, TransferError,
};
use endra::store::MemoryStore;
use endra::walytis::BlockId;
use futures_executor::block_on;
use rand_core::{OsRng, RngCore};

fn store(device: &Device) -> &MemoryStore {
    device.identity().chain().store()
}

/// Fetches `commitment`'s content into `to` from `from`, at most `limit` answers; returns
/// the sealed bytes fetched and the statuses seen after each answer.
async fn transfer(
    from: &Device,
    to: &Device,
    commitment: &Commitment,
    limit: usize,
) -> (u64, Vec<ContentStatus>) {
    let mut fetch = to.fetch(commitment).await.unwrap();
    let mut statuses = Vec::new();
    for _ in 0..limit {
        let Some(request) = fetch.next_request() else {
            break;
        };
        let response = serve(&request, store(from)).await.unwrap();
        assert!(fetch.accept(&request, response, store(to)).await.unwrap());
        statuses.push(fetch.status());
    }
    (fetch.fetched_bytes(), statuses)
}

/// The current content of `record` as `device` shows it, fetched from `from` first.
async fn current_text(
    device: &mut Device,
    from: &Device,
    chain: &BlockId,
    record: &RecordId,
) -> String {
    let view = device.record_of(chain, record).await.unwrap().unwrap();
    let content = view.content.expect("a live record");
    transfer(from, device, &content, usize::MAX).await;
    String::from_utf8(device.content(chain, &content).await.unwrap()).unwrap()
}

/// `from` posts `body` and hands its blocks to `to`: the record and its content's commitment
/// as `to` sees them.
async fn posted(
    from: &mut Device,
    to: &mut Device,
    chain: &BlockId,
    body: &[u8],
    media_type: &str,
) -> (RecordId, Commitment) {
    let record = from
        .post(chain, body, media_type, T0 + 20, &mut OsRng)
        .await
        .unwrap();
    deliver(&from.take_outbox(), &mut [to]).await;
    let view = to.record_of(chain, &record).await.unwrap().unwrap();
    (record, view.content.unwrap())
}

/// Ada's laptop and phone, on one default chain.
async fn two_devices() -> (Device, Device, BlockId) {
    let mut laptop = new_person().await;
    laptop.take_outbox();
    let mut phone = join(&mut laptop, &mut [], T0 + 10).await;
    let chain = join_default_chain(&laptop, &mut phone).await;
    (laptop, phone, chain)
}

/// [`two_devices`], the phone's keys kept in the store returned, so that it can restart
/// (see [`reopen`]).
async fn two_devices_keeping_keys() -> (Device, Device, BlockId, MemoryStore) {
    let mut laptop = new_person().await;
    laptop.take_outbox();
    let keys = MemoryStore::new();
    let mut phone = join_keeping_keys(&mut laptop, &mut [], T0 + 10, &keys).await;
    let chain = join_default_chain(&laptop, &mut phone).await;
    (laptop, phone, chain, keys)
}

/// Opens `laptop`'s default chain on `device` from its genesis; the chain's ID.
async fn join_default_chain(laptop: &Device, device: &mut Device) -> BlockId {
    let chain = laptop.default_chain().unwrap();
    let genesis = laptop
        .bound_chain(&chain)
        .unwrap()
        .chain()
        .block(&chain)
        .await
        .unwrap()
        .unwrap()
        .block;
    device.join_chain(genesis).await.unwrap();
    chain
}

#[test]
fn a_post_reaches_the_other_device_as_a_block_and_its_content_only_through_a_transfer() {
    block_on(async {
        let (mut laptop, mut phone, chain) = two_devices().await;
        let (record, content) = posted(
            &mut laptop,
            &mut phone,
            &chain,
            b"hello from the laptop",
            "text/plain",
        )
        .await;
        let view = phone.record_of(&chain, &record).await.unwrap().unwrap();
        assert_eq!(content.media_type, "text/plain");
        assert_eq!(content.size, 21);
        // The block carries the commitment, not the content: nothing to show yet.
        assert_eq!(
            phone.fetch(&content).await.unwrap().status(),
            ContentStatus::Missing
        );
        assert!(matches!(
            phone.content(&chain, &content).await,
            Err(ClientError::ContentUnavailable(ContentStatus::Missing))
        ));
        // No block of the chain holds the plaintext, sealed or not.
        for entry in laptop
            .bound_chain(&chain)
            .unwrap()
            .chain()
            .blocks(Default::default())
            .await
            .unwrap()
        {
            let bytes = entry.block.bytes();
            assert!(!bytes
                .windows(16)
                .any(|w| b"hello from the laptop".windows(16).any(|p| p == w)));
        }
        let (fetched, statuses) = transfer(&laptop, &phone, &content, usize::MAX).await;
        assert_eq!(statuses.last(), Some(&ContentStatus::Available));
        assert_eq!(fetched, 21 + 16, "one sealed segment");
        assert_eq!(
            phone.content(&chain, &content).await.unwrap(),
            b"hello from the laptop"
        );
        assert_eq!(view.author, laptop.identity().did());
        assert_eq!(view.history.len(), 1);
        assert_eq!(view.history[0].kind, VersionKind::Create);
    });
}

#[test]
fn both_devices_of_the_author_edit_concurrent_edits_conflict_and_a_merge_resolves_them() {
    block_on(async {
        let (mut laptop, mut phone, chain) = two_devices().await;
        let (record, _) = posted(&mut laptop, &mut phone, &chain, b"v1", "text/plain").await;
        phone
            .edit(
                &chain,
                &record,
                b"v2 from the phone",
                "text/plain",
                T0 + 21,
                &mut OsRng,
            )
            .await
            .unwrap();
        laptop
            .edit(
                &chain,
                &record,
                b"v2 from the laptop",
                "text/plain",
                T0 + 22,
                &mut OsRng,
            )
            .await
            .unwrap();
        deliver(&phone.take_outbox(), &mut [&mut laptop]).await;
        deliver(&laptop.take_outbox(), &mut [&mut phone]).await;
        let on_laptop = laptop.record_of(&chain, &record).await.unwrap().unwrap();
        let on_phone = phone.record_of(&chain, &record).await.unwrap().unwrap();
        assert_eq!(on_laptop, on_phone, "both show the same record");
        assert_eq!(
            on_laptop.conflicts.len(),
            1,
            "two concurrent edits: one conflict"
        );
        assert_eq!(on_laptop.history.len(), 3);

        phone
            .edit(
                &chain,
                &record,
                b"v3 merged",
                "text/plain",
                T0 + 30,
                &mut OsRng,
            )
            .await
            .unwrap();
        deliver(&phone.take_outbox(), &mut [&mut laptop]).await;
        let view = laptop.record_of(&chain, &record).await.unwrap().unwrap();
        assert!(view.conflicts.is_empty(), "the phone's edit saw both heads");
        assert_eq!(
            current_text(&mut laptop, &phone, &chain, &record).await,
            "v3 merged"
        );
        assert_eq!(
            view,
            phone.record_of(&chain, &record).await.unwrap().unwrap()
        );
    });
}

#[test]
fn an_erasing_delete_empties_every_store_of_the_record_and_nobody_serves_it_again() {
    block_on(async {
        let (mut laptop, mut phone, chain) = two_devices().await;
        let record = laptop
            .post(
                &chain,
                b"something regretted",
                "text/plain",
                T0 + 20,
                &mut OsRng,
            )
            .await
            .unwrap();
        laptop
            .edit(
                &chain,
                &record,
                b"something regretted, edited",
                "text/plain",
                T0 + 21,
                &mut OsRng,
            )
            .await
            .unwrap();
        deliver(&laptop.take_outbox(), &mut [&mut phone]).await;
        let view = phone.record_of(&chain, &record).await.unwrap().unwrap();
        let roots: Vec<Commitment> = view
            .history
            .iter()
            .filter_map(|h| h.content.clone())
            .collect();
        assert_eq!(roots.len(), 2);
        // A relay's mailbox keeps the ciphertext: it reads no delete, it takes erase requests.
        let relay = endra::store::MemoryStore::new();
        for content in &roots {
            transfer(&laptop, &phone, content, usize::MAX).await;
            let leaves = store(&laptop).tree(&content.root).await.unwrap().unwrap();
            relay.put_tree(&content.root, &leaves).await.unwrap();
            for index in 0..content.segments() {
                let segment = store(&laptop).segment(&content.root, index).await;
                let segment = segment.unwrap().unwrap();
                relay
                    .put_segment(&content.root, index, &segment)
                    .await
                    .unwrap();
            }
        }

        phone
            .delete(&chain, &record, true, T0 + 30, &mut OsRng)
            .await
            .unwrap();
        deliver(&phone.take_outbox(), &mut [&mut laptop]).await;
        let erasures = phone.take_erasures();
        let mut asked: Vec<_> = erasures.iter().map(|e| e.root).collect();
        let mut versions: Vec<_> = roots.iter().map(|c| c.root).collect();
        asked.sort_unstable();
        versions.sort_unstable();
        assert_eq!(
            asked, versions,
            "one erase request for each version's content"
        );
        for erasure in &erasures {
            assert_eq!(
                erase_on_request(&erasure.root, &erasure.secret, &relay)
                    .await
                    .unwrap(),
                ContentResponse::Accepted
            );
            assert!(relay.held(&erasure.root).await.unwrap().is_empty());
            assert!(relay.is_erased(&erasure.root).await.unwrap());
        }
        assert!(
            laptop.take_erasures().is_empty(),
            "only the deleting device asks"
        );
        for device in [&mut laptop, &mut phone] {
            let view = device.record_of(&chain, &record).await.unwrap().unwrap();
            assert!(view.erased);
            assert_eq!(view.current, None);
            let kinds: Vec<VersionKind> = view.history.iter().map(|h| h.kind).collect();
            assert_eq!(
                kinds,
                vec![
                    VersionKind::Create,
                    VersionKind::Edit,
                    VersionKind::Delete { erase: true }
                ],
                "the history keeps every version, deleted ones included"
            );
            assert!(view.history.iter().all(|h| h.content.is_none()));
        }
        for content in &roots {
            for device in [&laptop, &phone] {
                assert!(store(device).held(&content.root).await.unwrap().is_empty());
                assert_eq!(
                    serve(&ContentRequest::Segment(content.root, 0), store(device))
                        .await
                        .unwrap(),
                    ContentResponse::Erased
                );
                assert_eq!(
                    device.fetch(content).await.unwrap().status(),
                    ContentStatus::Erased
                );
            }
        }
        assert!(matches!(
            laptop
                .edit(&chain, &record, b"again", "text/plain", T0 + 40, &mut OsRng)
                .await,
            Err(ClientError::RecordDeleted(_))
        ));
    });
}

#[test]
fn a_large_content_arrives_with_monotonic_progress_and_an_interrupted_transfer_resumes() {
    block_on(async {
        let (mut laptop, mut phone, chain) = two_devices().await;
        let mut file = vec![0u8; 5 * 1024 * 1024 + 123];
        OsRng.fill_bytes(&mut file);
        let (_, content) = posted(
            &mut laptop,
            &mut phone,
            &chain,
            &file,
            "application/octet-stream",
        )
        .await;
        // The tree and 30 segments, then the transfer stops (a reload, say).
        let (first, statuses) = transfer(&laptop, &phone, &content, 31).await;
        let mut last = 0;
        for status in &statuses[1..] {
            let ContentStatus::Fetching { done, total } = *status else {
                panic!("{status:?}");
            };
            assert!(done > last, "progress only grows");
            assert_eq!(total, content.size + 81 * 16);
            last = done;
        }
        assert!(matches!(
            phone.content(&chain, &content).await,
            Err(ClientError::ContentUnavailable(_))
        ));
        // A segment already here opens; one still to come is refused with where the
        // content stands.
        assert_eq!(
            phone.content_segment(&chain, &content, 0).await.unwrap(),
            file[..64 * 1024]
        );
        let last = content.segments() - 1;
        match phone.content_segment(&chain, &content, last).await {
            Err(ClientError::ContentUnavailable(status)) => {
                assert_ne!(status, ContentStatus::Available)
            }
            other => panic!("{other:?}"),
        }
        // A new fetch starts from the verified segments already stored.
        let (rest, statuses) = transfer(&laptop, &phone, &content, usize::MAX).await;
        assert_eq!(statuses.last(), Some(&ContentStatus::Available));
        assert_eq!(
            first + rest,
            content.size + 81 * 16,
            "no segment fetched twice"
        );
        assert_eq!(phone.content(&chain, &content).await.unwrap(), file);
        // Or segment by segment, none over 64 KiB: how a reader streams it.
        let mut streamed = Vec::new();
        for index in 0..content.segments() {
            let segment = phone
                .content_segment(&chain, &content, index)
                .await
                .unwrap();
            assert!(segment.len() <= 64 * 1024);
            streamed.extend(segment);
        }
        assert_eq!(streamed, file);
    });
}

#[test]
fn verified_segments_kept_in_batches_count_only_once_stored() {
    block_on(async {
        let (mut laptop, mut phone, chain) = two_devices().await;
        let mut file = vec![0u8; 10 * 64 * 1024];
        OsRng.fill_bytes(&mut file);
        let (_, content) = posted(&mut laptop, &mut phone, &chain, &file, "x/y").await;
        let mut fetch = phone.fetch(&content).await.unwrap();
        let tree = fetch.next_request().unwrap();
        let answer = serve(&tree, store(&laptop)).await.unwrap();
        assert!(fetch.take(&tree, answer, store(&phone)).await.unwrap());
        // Four segments taken, not stored: not asked for again, not counted as held.
        for _ in 0..4 {
            let request = fetch.next_request().unwrap();
            let answer = serve(&request, store(&laptop)).await.unwrap();
            assert!(fetch.take(&request, answer, store(&phone)).await.unwrap());
        }
        assert_eq!(fetch.unstored(), 4);
        assert_eq!(
            fetch.next_request(),
            Some(ContentRequest::Segment(content.root, 4))
        );
        assert_eq!(fetch.missing().count(), 6);
        assert_eq!(fetch.status(), ContentStatus::Missing);
        assert_eq!(fetch.fetched_bytes(), 0);
        assert!(store(&phone).held(&content.root).await.unwrap().is_empty());
        // A crash now loses them: a new fetch asks for them again.
        let again = phone.fetch(&content).await.unwrap();
        assert_eq!(
            again.next_request(),
            Some(ContentRequest::Segment(content.root, 0))
        );
        // Stored, in one call: held, counted, resumed from.
        fetch.store_verified(store(&phone)).await.unwrap();
        assert_eq!(fetch.unstored(), 0);
        assert_eq!(
            store(&phone).held(&content.root).await.unwrap(),
            vec![0, 1, 2, 3]
        );
        assert_eq!(fetch.fetched_bytes(), 4 * (64 * 1024 + 16));
        let resumed = phone.fetch(&content).await.unwrap();
        assert_eq!(
            resumed.next_request(),
            Some(ContentRequest::Segment(content.root, 4))
        );
        // Erased before the next batch is stored: nothing of it is kept.
        let request = fetch.next_request().unwrap();
        let answer = serve(&request, store(&laptop)).await.unwrap();
        assert!(fetch.take(&request, answer, store(&phone)).await.unwrap());
        store(&phone).erase(&content.root).await.unwrap();
        assert_eq!(
            fetch.store_verified(store(&phone)).await,
            Err(TransferError::Erased)
        );
        assert!(store(&phone).held(&content.root).await.unwrap().is_empty());
        assert_eq!(fetch.status(), ContentStatus::Erased);
    });
}

#[test]
fn a_peer_serving_a_tampered_segment_is_caught_and_nothing_of_it_is_kept() {
    block_on(async {
        let (mut laptop, mut phone, chain) = two_devices().await;
        let (_, content) = posted(
            &mut laptop,
            &mut phone,
            &chain,
            &[7u8; 100_000],
            "application/octet-stream",
        )
        .await;
        let mut fetch = phone.fetch(&content).await.unwrap();
        let tree = fetch.next_request().unwrap();
        let answer = serve(&tree, store(&laptop)).await.unwrap();
        // A forged tree first: refused.
        let ContentResponse::Tree(mut leaves) = answer.clone() else {
            panic!()
        };
        leaves[0][0] ^= 1;
        assert_eq!(
            fetch
                .accept(&tree, ContentResponse::Tree(leaves), store(&phone))
                .await,
            Err(TransferError::Content(OffchainError::TreeMismatch))
        );
        assert!(fetch.accept(&tree, answer, store(&phone)).await.unwrap());
        let segment = fetch.next_request().unwrap();
        let ContentResponse::Segment(mut bytes) = serve(&segment, store(&laptop)).await.unwrap()
        else {
            panic!()
        };
        bytes[10] ^= 1;
        assert_eq!(
            fetch
                .accept(&segment, ContentResponse::Segment(bytes), store(&phone))
                .await,
            Err(TransferError::Content(OffchainError::SegmentMismatch {
                index: 0
            }))
        );
        assert!(store(&phone).held(&content.root).await.unwrap().is_empty());
        // Another peer (the honest laptop) completes it.
        transfer(&laptop, &phone, &content, usize::MAX).await;
        assert_eq!(
            phone.content(&chain, &content).await.unwrap(),
            vec![7u8; 100_000]
        );
    });
}

#[test]
fn a_removed_device_cannot_open_content_posted_after_its_removal() {
    block_on(async {
        let (mut laptop, mut phone, chain) = two_devices().await;
        let phone_did = phone.identity().device().did().to_owned();
        laptop
            .remove(&phone_did, T0 + 30, &mut OsRng)
            .await
            .unwrap();
        let record = laptop
            .post(
                &chain,
                b"after the phone was stolen",
                "text/plain",
                T0 + 40,
                &mut OsRng,
            )
            .await
            .unwrap();
        // The thief gets every block and every byte of the content.
        let outbox = laptop.take_outbox();
        for publication in &outbox {
            phone
                .receive(
                    &publication.chain,
                    publication.blocks.iter().map(|b| b.bytes()),
                )
                .await
                .unwrap();
        }
        assert!(!phone.identity().is_current_device());
        let view = laptop.record_of(&chain, &record).await.unwrap().unwrap();
        let content = view.content.unwrap();
        transfer(&laptop, &phone, &content, usize::MAX).await;
        assert_eq!(
            phone.fetch(&content).await.unwrap().status(),
            ContentStatus::Available
        );
        assert!(
            phone.content(&chain, &content).await.is_err(),
            "the removed device holds the sealed bytes but no key opens them"
        );
        // And it cannot post or edit any more.
        assert!(phone
            .post(&chain, b"thief", "text/plain", T0 + 50, &mut OsRng)
            .await
            .is_err());
    });
}

#[test]
fn in_a_group_only_the_author_edits_an_admin_deletes_and_forged_versions_change_nothing() {
    use common::identity::{genesis, group_founded_by, join_group, keys_of, replica_for};
    use endra::client::Account;
    use endra::envelope::{ContentKind, Envelope};
    use endra::mutability::{Refusal, VersionOp};

    block_on(async {
        let ada = common::identity::new_person("Ada").await;
        let bob = common::identity::new_person("Bob").await;
        let mut ada_group = group_founded_by(&ada, "Team").await;
        let mut bob_group = replica_for(&bob, &genesis(&ada_group).await).await;
        join_group(&mut ada_group, &bob, &mut bob_group).await;
        let group = ada_group.chain().id();
        let chain = ada_group.default_chain().unwrap();
        let mut ada = Account::open(ada.chain().store().clone(), group, keys_of(&ada))
            .await
            .unwrap();
        let mut bob = Account::open(bob.chain().store().clone(), group, keys_of(&bob))
            .await
            .unwrap();
        ada.open_chain(chain).await.unwrap();
        bob.open_chain(chain).await.unwrap();

        let (bobs, _) = posted(&mut bob, &mut ada, &chain, b"Bob's message", "text/plain").await;
        let (adas, _) = posted(&mut ada, &mut bob, &chain, b"Ada's message", "text/plain").await;
        assert_eq!(
            current_text(&mut ada, &bob, &chain, &bobs).await,
            "Bob's message"
        );

        // Refused locally with a typed error…
        assert!(matches!(
            ada.edit(
                &chain,
                &bobs,
                b"Ada's words now",
                "text/plain",
                T0 + 110,
                &mut OsRng
            )
            .await,
            Err(ClientError::NotTheAuthor(_))
        ));
        assert!(matches!(
            bob.delete(&chain, &adas, false, T0 + 110, &mut OsRng).await,
            Err(ClientError::NotPermitted(_))
        ));
        // …and written anyway by modified clients, refused by every replica.
        let view = ada.record_of(&chain, &bobs).await.unwrap().unwrap();
        let forged_edit = Envelope {
            kind: ContentKind::Version,
            target: Some(bobs),
            payload: VersionOp::edit(bobs, vec![bobs], view.content.clone().unwrap()).encode(),
        };
        let forged_edit = ada
            .write_to(&chain, &forged_edit, vec![], T0 + 111, &mut OsRng)
            .await
            .unwrap();
        let forged_delete = Envelope {
            kind: ContentKind::Version,
            target: Some(adas),
            payload: VersionOp::delete(adas, vec![adas], true).encode(),
        };
        let forged_delete = bob
            .write_to(&chain, &forged_delete, vec![], T0 + 112, &mut OsRng)
            .await
            .unwrap();
        deliver(&ada.take_outbox(), &mut [&mut bob]).await;
        deliver(&bob.take_outbox(), &mut [&mut ada]).await;
        for device in [&mut ada, &mut bob] {
            let bobs_view = device.record_of(&chain, &bobs).await.unwrap().unwrap();
            assert_eq!(
                bobs_view.current,
                Some(bobs),
                "the forged edit changed nothing"
            );
            assert_eq!(
                bobs_view.refused,
                vec![(forged_edit, Refusal::NotTheAuthor)]
            );
            let adas_view = device.record_of(&chain, &adas).await.unwrap().unwrap();
            assert_eq!(adas_view.deleted, None, "the forged delete changed nothing");
            assert!(!adas_view.erased);
            assert_eq!(
                adas_view.refused,
                vec![(forged_delete, Refusal::NotPermitted)]
            );
        }
        // Nothing was erased: Ada's content is still held.
        let adas_content = ada
            .record_of(&chain, &adas)
            .await
            .unwrap()
            .unwrap()
            .content
            .unwrap();
        assert_eq!(store(&ada).held(&adas_content.root).await.unwrap(), vec![0]);

        // Ada administers the group: her delete of Bob's message is honoured everywhere.
        let delete = ada
            .delete(&chain, &bobs, false, T0 + 120, &mut OsRng)
            .await
            .unwrap();
        deliver(&ada.take_outbox(), &mut [&mut bob]).await;
        for device in [&mut ada, &mut bob] {
            let view = device.record_of(&chain, &bobs).await.unwrap().unwrap();
            assert_eq!(view.deleted, Some(delete));
            assert_eq!(view.current, None);
            assert_eq!(view.author, bob_did(device));
        }
    });
}

/// Bob's person DID: the author of his records in the group.
fn bob_did(device: &Device) -> String {
    device
        .identity()
        .state()
        .members()
        .keys()
        .find(|did| {
            device.identity().state().member(did).unwrap().role != endra::identity::Role::Admin
        })
        .unwrap()
        .clone()
}

#[test]
fn a_removed_device_s_delete_written_before_it_heard_of_its_removal_changes_nothing() {
    block_on(async {
        let (mut laptop, mut phone, chain) = two_devices().await;
        let (record, content) =
            posted(&mut laptop, &mut phone, &chain, b"keep me", "text/plain").await;
        // The stolen phone, not yet told, erases the record; the laptop removes it meanwhile.
        phone
            .delete(&chain, &record, true, T0 + 30, &mut OsRng)
            .await
            .unwrap();
        let stolen = phone.take_outbox();
        let phone_did = phone.identity().device().did().to_owned();
        laptop
            .remove(&phone_did, T0 + 31, &mut OsRng)
            .await
            .unwrap();
        // Its blocks arrive after the removal: stored or refused, they change nothing.
        for publication in &stolen {
            let blocks = publication.blocks.iter().map(|b| b.bytes());
            laptop.receive(&publication.chain, blocks).await.unwrap();
        }
        let view = laptop.record_of(&chain, &record).await.unwrap().unwrap();
        assert_eq!(
            view.deleted, None,
            "the removed device's delete is not applied"
        );
        assert!(!view.erased);
        assert_eq!(view.current, Some(record));
        assert_eq!(laptop.content(&chain, &content).await.unwrap(), b"keep me");
    });
}

/// A content read a segment at a time, counting the reads; `change_on_second_pass` gives
/// other bytes for one segment the second time it is read.
struct CountingSource {
    content: Vec<u8>,
    reads: Vec<u32>,
    change_on_second_pass: Option<u32>,
}

impl endra::client::SegmentSource for CountingSource {
    fn size(&self) -> u64 {
        self.content.len() as u64
    }

    async fn segment(&mut self, index: u32) -> Result<Vec<u8>, ClientError> {
        let again = self.reads.contains(&index);
        self.reads.push(index);
        let start = index as usize * endra::offchain::SEGMENT_LEN;
        let end = (start + endra::offchain::SEGMENT_LEN).min(self.content.len());
        let mut bytes = self.content[start..end].to_vec();
        if again && self.change_on_second_pass == Some(index) {
            bytes[0] ^= 1;
        }
        Ok(bytes)
    }
}

#[test]
fn a_content_read_a_segment_at_a_time_is_posted_without_being_held_whole() {
    block_on(async {
        let (mut laptop, mut phone, chain) = two_devices().await;
        let mut content = vec![0u8; 5 * 65_536 + 1_234];
        OsRng.fill_bytes(&mut content);
        let mut source = CountingSource {
            content: content.clone(),
            reads: Vec::new(),
            change_on_second_pass: None,
        };
        let record = laptop
            .post_from(&chain, &mut source, "video/mp4", T0 + 20, &mut OsRng)
            .await
            .unwrap();
        // Each of the six segments read twice, one pass after the other: never all at once.
        assert_eq!(source.reads, [0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5]);
        deliver(&laptop.take_outbox(), &mut [&mut phone]).await;
        let view = phone.record_of(&chain, &record).await.unwrap().unwrap();
        let commitment = view.content.unwrap();
        assert_eq!(commitment.size, content.len() as u64);
        assert_eq!(commitment.media_type, "video/mp4");
        transfer(&laptop, &phone, &commitment, usize::MAX).await;
        assert_eq!(phone.content(&chain, &commitment).await.unwrap(), content);

        // A source that gives other bytes the second time: refused, nothing of it kept.
        let mut changing = CountingSource {
            content: content.clone(),
            reads: Vec::new(),
            change_on_second_pass: Some(3),
        };
        let posted = laptop
            .post_from(&chain, &mut changing, "video/mp4", T0 + 21, &mut OsRng)
            .await;
        assert!(matches!(
            posted,
            Err(ClientError::Content(OffchainError::Shape(_)))
        ));
        assert!(laptop.take_outbox().is_empty(), "no version was written");

        // Over the limit: refused before a byte is read.
        let mut huge = CountingSource {
            content: Vec::new(),
            reads: Vec::new(),
            change_on_second_pass: None,
        };
        struct Huge<'a>(&'a mut CountingSource);
        impl endra::client::SegmentSource for Huge<'_> {
            fn size(&self) -> u64 {
                endra::offchain::MAX_CONTENT_LEN + 1
            }
            async fn segment(&mut self, index: u32) -> Result<Vec<u8>, ClientError> {
                self.0.reads.push(index);
                Ok(Vec::new())
            }
        }
        let posted = laptop
            .post_from(
                &chain,
                &mut Huge(&mut huge),
                "video/mp4",
                T0 + 22,
                &mut OsRng,
            )
            .await;
        assert!(matches!(
            posted,
            Err(ClientError::Content(OffchainError::TooLarge { .. }))
        ));
        assert!(huge.reads.is_empty());
    });
}

/// What `events` tell, without their numbers.
fn told(events: &[LogEvent]) -> Vec<(BlockId, LogKind)> {
    events.iter().map(|e| (e.version, e.kind)).collect()
}

#[test]
fn record_events_are_told_once_in_causal_order_and_resume_after_a_restart() {
    block_on(async {
        let (mut laptop, mut phone, chain, keys) = two_devices_keeping_keys().await;
        assert!(phone.record_events(&chain, None).await.unwrap().is_empty());

        // A post arrives as a block: told created; its content, once transferred, told too.
        let (record, content) = posted(&mut laptop, &mut phone, &chain, b"one", "text/plain").await;
        let first = phone.record_events(&chain, None).await.unwrap();
        assert_eq!(told(&first), vec![(record, LogKind::Created)]);
        assert_eq!(first[0].seq, 0);
        assert!(
            phone
                .record_events(&chain, Some(0))
                .await
                .unwrap()
                .is_empty(),
            "nothing twice"
        );
        transfer(&laptop, &phone, &content, usize::MAX).await;
        let arrived = phone.record_events(&chain, Some(0)).await.unwrap();
        assert_eq!(told(&arrived), vec![(record, LogKind::ContentArrived)]);
        assert_eq!(arrived[0].seq, 1);

        // Two edits delivered together: told in causal order.
        let edit = laptop
            .edit(&chain, &record, b"two", "text/plain", T0 + 30, &mut OsRng)
            .await
            .unwrap();
        let again = laptop
            .edit(&chain, &record, b"three", "text/plain", T0 + 31, &mut OsRng)
            .await
            .unwrap();
        deliver(&laptop.take_outbox(), &mut [&mut phone]).await;
        let edits = phone.record_events(&chain, Some(1)).await.unwrap();
        assert_eq!(
            told(&edits),
            vec![(edit, LogKind::Edited), (again, LogKind::Edited)]
        );
        let before_restart = phone.record_events(&chain, None).await.unwrap();

        // A restart: the phone opens from its store; a reader resuming from seq 3 gets what
        // came after, and the whole log is the one told before.
        let erase = laptop
            .delete(&chain, &record, true, T0 + 40, &mut OsRng)
            .await
            .unwrap();
        let mut phone = reopen(phone, &keys, chain).await;
        assert_eq!(
            phone.record_events(&chain, None).await.unwrap(),
            before_restart,
            "the same events under the same numbers"
        );
        assert!(phone
            .record_events(&chain, Some(3))
            .await
            .unwrap()
            .is_empty());
        deliver(&laptop.take_outbox(), &mut [&mut phone]).await;
        let after = phone.record_events(&chain, Some(3)).await.unwrap();
        assert_eq!(
            told(&after),
            vec![(erase, LogKind::Deleted { erase: true })]
        );
        assert_eq!(after[0].seq, 4);
    });
}

#[test]
fn a_removed_device_s_post_no_longer_shown_is_told_withdrawn() {
    block_on(async {
        let (mut laptop, mut phone, chain) = two_devices().await;
        let mut tablet = join(&mut laptop, &mut [&mut phone], T0 + 15).await;
        join_default_chain(&laptop, &mut tablet).await;
        // The stolen phone's post reaches the tablet, not the laptop.
        let record = phone
            .post(
                &chain,
                b"from the stolen phone",
                "text/plain",
                T0 + 20,
                &mut OsRng,
            )
            .await
            .unwrap();
        deliver(&phone.take_outbox(), &mut [&mut tablet]).await;
        let shown = tablet.record_events(&chain, None).await.unwrap();
        assert_eq!(told(&shown), vec![(record, LogKind::Created)]);
        // The laptop removes the phone; no current device built on its post: shown no more.
        let phone_did = phone.identity().device().did().to_owned();
        laptop
            .remove(&phone_did, T0 + 31, &mut OsRng)
            .await
            .unwrap();
        deliver(&laptop.take_outbox(), &mut [&mut tablet]).await;
        assert!(tablet.record_of(&chain, &record).await.unwrap().is_none());
        let withdrawn = tablet.record_events(&chain, Some(0)).await.unwrap();
        assert_eq!(told(&withdrawn), vec![(record, LogKind::Withdrawn)]);
        assert!(tablet
            .record_events(&chain, Some(1))
            .await
            .unwrap()
            .is_empty());
    });
}

#[test]
fn a_post_an_edit_a_delete_and_a_short_text_are_sealed_in_blocks_of_one_length() {
    block_on(async {
        let (mut laptop, _phone, chain) = two_devices().await;
        let record = laptop
            .post(
                &chain,
                b"a text somewhat longer than the edit",
                "text/plain",
                T0 + 20,
                &mut OsRng,
            )
            .await
            .unwrap();
        let edit = laptop
            .edit(&chain, &record, b"ok", "text/plain", T0 + 21, &mut OsRng)
            .await
            .unwrap();
        let delete = laptop
            .delete(&chain, &record, true, T0 + 22, &mut OsRng)
            .await
            .unwrap();
        let text = laptop
            .write(
                &Envelope::message(*b"a short text"),
                vec![],
                T0 + 23,
                &mut OsRng,
            )
            .await
            .unwrap();
        let bound = laptop.bound_chain(&chain).unwrap().chain();
        let mut lengths = Vec::new();
        for id in [record, edit, delete, text] {
            let entry = bound.block(&id).await.unwrap().unwrap();
            lengths.push(entry.block.body().len());
        }
        // What a relay sees of each: one length, so it cannot tell which is which.
        assert!(
            lengths.iter().all(|l| *l == lengths[0]),
            "sealed lengths {lengths:?}"
        );
    });
}

#[test]
fn a_posted_record_read_from_its_block_alone_is_what_the_fold_shows() {
    block_on(async {
        let (mut laptop, _phone, chain) = two_devices().await;
        let record = laptop
            .post(&chain, b"hello", "text/plain", T0 + 20, &mut OsRng)
            .await
            .unwrap();
        let from_block = laptop.posted_record(&chain, &record).await.unwrap();
        let folded = laptop.record_of(&chain, &record).await.unwrap().unwrap();
        assert_eq!(from_block, folded);
        assert_eq!(
            laptop.version_content(&chain, &record).await.unwrap(),
            folded.content
        );
        let edit = laptop
            .edit(
                &chain,
                &record,
                b"hello again",
                "text/plain",
                T0 + 21,
                &mut OsRng,
            )
            .await
            .unwrap();
        let edited = laptop.record_of(&chain, &record).await.unwrap().unwrap();
        assert_eq!(
            laptop.version_content(&chain, &edit).await.unwrap(),
            edited.content
        );
        // A block that is no version, and one not held.
        let message = laptop
            .write(&Envelope::message(*b"plain"), vec![], T0 + 22, &mut OsRng)
            .await
            .unwrap();
        assert_eq!(
            laptop.version_content(&chain, &message).await.unwrap(),
            None
        );
        let nothing = BlockId::of(b"no such block");
        assert_eq!(
            laptop.version_content(&chain, &nothing).await.unwrap(),
            None
        );
        assert!(matches!(
            laptop.posted_record(&chain, &nothing).await,
            Err(ClientError::NoSuchRecord(_))
        ));
    });
}

#[test]
fn records_folded_as_blocks_arrive_are_the_records_folded_whole() {
    block_on(async {
        let (mut laptop, mut phone, chain, keys) = two_devices_keeping_keys().await;
        // The phone folds after each publication that reaches it, and after its own post.
        let mut steps = 0;
        let one = laptop
            .post(&chain, b"one", "text/plain", T0 + 20, &mut OsRng)
            .await
            .unwrap();
        let two = laptop
            .post(&chain, b"two", "text/plain", T0 + 21, &mut OsRng)
            .await
            .unwrap();
        for publication in laptop.take_outbox() {
            deliver(&[publication], &mut [&mut phone]).await;
            phone.records_of(&chain).await.unwrap();
            steps += 1;
        }
        laptop
            .edit(
                &chain,
                &one,
                b"one, edited",
                "text/plain",
                T0 + 22,
                &mut OsRng,
            )
            .await
            .unwrap();
        deliver(&laptop.take_outbox(), &mut [&mut phone]).await;
        phone.records_of(&chain).await.unwrap();
        phone
            .post(&chain, b"three", "text/plain", T0 + 23, &mut OsRng)
            .await
            .unwrap();
        phone.records_of(&chain).await.unwrap();
        laptop
            .delete(&chain, &two, true, T0 + 24, &mut OsRng)
            .await
            .unwrap();
        deliver(&laptop.take_outbox(), &mut [&mut phone]).await;
        let stepwise = phone.records_of(&chain).await.unwrap();
        assert!(steps >= 1);
        // The same store opened again: nothing folded yet, so every block is folded at once.
        let mut again = reopen(phone, &keys, chain).await;
        let whole = again.records_of(&chain).await.unwrap();
        assert_eq!(stepwise.records().len(), 3);
        assert_eq!(stepwise.records(), whole.records());
        assert_eq!(stepwise.len(), whole.len());
        for record in whole.records() {
            assert_eq!(stepwise.record(&record), whole.record(&record));
        }
    });
}
