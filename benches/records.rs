//! Records benchmarks, native: what one private message costs to write (seal the content into
//! the content store, commit, seal the version op, sign, store) beside a plain sealed message
//! in the same run, posting 1 MiB, and folding a record of 100 versions into its current
//! version and history.
//!
//! `cargo bench --bench records` prints the numbers and writes them to
//! `bench/results/records.json` (summarised in the README).

#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::time::Instant;

use endra::client::{Account, Keyring};
use endra::envelope::Envelope;
use endra::identity::{Founding, KdfFloor, KdfParams, Kind};
use endra::store::MemoryStore;
use futures_executor::block_on;
use rand_core::{OsRng, RngCore};

const T0: u64 = 1_700_000_000_000;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

async fn account() -> Account<MemoryStore> {
    let keyring = Keyring {
        params: KdfParams::INSECURE_TEST,
        floor: KdfFloor::NONE,
    };
    let keys = keyring
        .unlock(&MemoryStore::new(), "pass", &mut OsRng)
        .await
        .unwrap();
    let founding = Founding {
        kind: Kind::Person,
        name: "Ada".into(),
        relays: vec![],
        founder: None,
        recovery: None,
        anchor: None,
    };
    let mut account = Account::create(MemoryStore::new(), keys, founding, T0, &mut OsRng)
        .await
        .unwrap();
    account.take_outbox();
    account
}

/// Median ms of `runs` calls of `step`.
fn timed(runs: usize, mut step: impl FnMut(usize)) -> f64 {
    median(
        (0..runs)
            .map(|n| {
                let start = Instant::now();
                step(n);
                start.elapsed().as_secs_f64() * 1e3
            })
            .collect(),
    )
}

fn main() {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let (runs, versions, big) = if smoke {
        (3, 5, 64 * 1024)
    } else {
        (200, 100, 1024 * 1024)
    };
    let mut writer = block_on(account());
    let chain = writer.default_chain().unwrap();
    let text = [b'x'; 100];

    // Interleaved, so both rows see the same machine.
    let mut private = Vec::new();
    let mut plain = Vec::new();
    for n in 0..runs {
        let time = T0 + 10 + n as u64;
        let start = Instant::now();
        block_on(writer.post(&chain, &text, "text/plain", time, &mut OsRng)).unwrap();
        private.push(start.elapsed().as_secs_f64() * 1e3);
        let start = Instant::now();
        block_on(writer.write_to(&chain, &Envelope::message(text), vec![], time, &mut OsRng))
            .unwrap();
        plain.push(start.elapsed().as_secs_f64() * 1e3);
        writer.take_outbox();
    }
    let (private_ms, plain_ms) = (median(private), median(plain));
    println!(
        "write one 100-byte private message (seal into the content store, commit, seal the version, sign, store): {private_ms:.3} ms; a plain sealed message, same run: {plain_ms:.3} ms (median of {runs})"
    );

    let mut file = vec![0u8; big];
    OsRng.fill_bytes(&mut file);
    let post_big_ms = timed(if smoke { 1 } else { 5 }, |n| {
        block_on(writer.post(
            &chain,
            &file,
            "application/octet-stream",
            T0 + 1_000 + n as u64,
            &mut OsRng,
        ))
        .unwrap();
        writer.take_outbox();
    });
    let mib_per_s = big as f64 / (1024.0 * 1024.0) / (post_big_ms / 1e3);
    println!(
        "post {} KiB: {post_big_ms:.1} ms ({mib_per_s:.0} MiB/s)",
        big / 1024
    );

    // One record edited `versions - 1` times, among the messages above; read back from the
    // fold the account keeps (the first read folds the chain).
    let mut author = block_on(account());
    let notes = author.default_chain().unwrap();
    let record = block_on(author.post(&notes, b"v0", "text/plain", T0 + 1, &mut OsRng)).unwrap();
    for n in 1..versions {
        let body = format!("v{n}");
        block_on(author.edit(
            &notes,
            &record,
            body.as_bytes(),
            "text/plain",
            T0 + 1 + n as u64,
            &mut OsRng,
        ))
        .unwrap();
    }
    author.take_outbox();
    let history_ms = timed(if smoke { 1 } else { 9 }, |_| {
        let view = block_on(author.record_of(&notes, &record))
            .unwrap()
            .unwrap();
        assert_eq!(view.history.len(), versions);
    });
    println!("a record of {versions} versions, its current version and history, from the last fold (kept while the chain does not grow): {history_ms:.1} ms");

    if smoke {
        return;
    }
    let json = format!(
        "{{\n  \"benchmark\": \"records (native, cargo bench --bench records)\",\n  \"write_private_message_ms\": {private_ms:.3},\n  \"write_plain_message_ms\": {plain_ms:.3},\n  \"post\": {{ \"bytes\": {big}, \"median_ms\": {post_big_ms:.1}, \"mib_per_s\": {mib_per_s:.0} }},\n  \"history\": {{ \"versions\": {versions}, \"median_ms\": {history_ms:.1} }}\n}}\n"
    );
    std::fs::create_dir_all("bench/results").unwrap();
    std::fs::write("bench/results/records.json", &json).unwrap();
    print!("{json}");
}
