//! Walytis core benchmarks: sign, validate, insert 10,000 blocks and order them.
//!
//! `cargo bench --bench walytis` prints criterion's report and writes the headline numbers
//! to `bench/results/walytis.json` (summarised in the README).

#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::time::Duration;

use criterion::{black_box, BatchSize, Criterion};
use endra::store::MemoryStore;
use endra::walytis::{Block, BlockDraft, BlockId, Chain, Query};
use futures_executor::block_on;

const DAG_BLOCKS: usize = 10_000;

fn draft(chain: BlockId) -> BlockDraft {
    BlockDraft {
        chain: Some(chain),
        parents: vec![BlockId::of(b"parent a"), BlockId::of(b"parent b")],
        height: 42,
        time: 1_700_000_000_000,
        topics: vec!["chat".into()],
        body: vec![7u8; 200],
    }
}

fn benches(c: &mut Criterion) {
    let key = common::key(1);
    let chain = BlockId::of(b"bench chain");
    c.bench_function("sign_block", |b| {
        b.iter_batched(
            || draft(chain),
            |d| d.sign(&key).expect("sign"),
            BatchSize::SmallInput,
        )
    });
    let block = draft(chain).sign(&key).expect("sign");
    c.bench_function("validate_block", |b| {
        b.iter(|| Block::decode(black_box(block.bytes())).expect("valid"))
    });

    let (genesis, blocks) = common::random_dag(7, 4, DAG_BLOCKS);
    let bytes: Vec<&[u8]> = blocks.iter().map(Block::bytes).collect();
    let mut group = c.benchmark_group("dag");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.bench_function("insert_10000_and_order", |b| {
        b.iter(|| {
            block_on(async {
                let mut chain = Chain::from_genesis(
                    MemoryStore::new(),
                    &endra::identity::rules(),
                    genesis.clone(),
                )
                .await
                .expect("genesis");
                let report = chain.insert(bytes.iter().copied()).await.expect("insert");
                assert_eq!(report.accepted.len(), DAG_BLOCKS);
                let order = chain
                    .blocks(Query {
                        limit: usize::MAX,
                        ..Query::default()
                    })
                    .await
                    .expect("order");
                assert_eq!(order.len(), DAG_BLOCKS + 1);
                order
            })
        })
    });
    group.finish();
}

/// Mean time of a benchmark in nanoseconds, from criterion's estimates file.
fn mean_ns(dir: &Path, name: &str) -> Option<f64> {
    let text = std::fs::read_to_string(dir.join(name).join("new/estimates.json")).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["mean"]["point_estimate"].as_f64()
}

fn main() {
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/criterion");
    let mut c = Criterion::default()
        .output_directory(&out)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    benches(&mut c);
    c.final_summary();
    // Without `--bench` (`cargo test --benches`, which `npm test` runs) criterion runs each
    // bench once as a test: there are no measurements to write.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }

    let sign = mean_ns(&out, "sign_block");
    let validate = mean_ns(&out, "validate_block");
    let dag = mean_ns(&out, "dag/insert_10000_and_order");
    let per_second = |ns: Option<f64>| ns.map(|ns| (1e9 / ns).round());
    let results = serde_json::json!({
        "benchmark": "walytis core (native, one core)",
        "sign_block_us": sign.map(|ns| ns / 1e3),
        "sign_blocks_per_s": per_second(sign),
        "validate_block_us": validate.map(|ns| ns / 1e3),
        "validate_blocks_per_s": per_second(validate),
        "validate_target_blocks_per_s": 20_000,
        "insert_10000_and_order_s": dag.map(|ns| ns / 1e9),
        "insert_10000_and_order_target_s": 0.5,
    });
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/results/walytis.json");
    let text = serde_json::to_string_pretty(&results).unwrap_or_default();
    if let Err(e) = std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))
        .and_then(|()| std::fs::write(&path, &text))
    {
        eprintln!("could not write {}: {e}", path.display());
    }
    println!("{text}");
}
