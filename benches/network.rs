//! Native network benchmarks over libp2p on 127.0.0.1 (TCP, Noise, Yamux):
//!
//! - catch-up: a node joins a 10,000-block chain held by a relay's mailbox; time from `open`
//!   to the last block stored (target ≤ 1 s);
//! - relay capacity: `ENDRA_BENCH_CLIENTS` (default 1,000) clients in chats of 10 members,
//!   all through one `endra-relay` process (debug build, dependencies optimised); its memory
//!   per client and the blocks per second it fans out while every chat's writer sends.
//!
//! `cargo bench --features net --bench network` prints the numbers and writes them to
//! `bench/results/network-native.json` (summarised in the README).

#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::net::{count_reaches, listening, run_local, start, Running};
use endra::net::NodeConfig;
use endra::store::MemoryStore;
use endra::walytis::{BlockId, Chain};
use libp2p::Multiaddr;

/// Blocks of the catch-up chain (a smoke run: see [`smoke`]).
fn catch_up_blocks() -> u64 {
    if smoke() {
        200
    } else {
        10_000
    }
}

/// `cargo bench` passes `--bench`; without it (`cargo test --benches`, which `npm test` runs)
/// this is a smoke run: tiny sizes, nothing written, so a bench that no longer runs fails CI.
fn smoke() -> bool {
    !std::env::args().any(|a| a == "--bench")
}
const CHAT_MEMBERS: usize = 10;
const BLOCKS_PER_WRITER: usize = 20;

fn relay_config() -> NodeConfig {
    NodeConfig {
        mailbox: true,
        relay_server: true,
        ..NodeConfig::default()
    }
}

/// Seconds for a fresh node to fetch a 10,000-block chain from the relay's mailbox.
async fn catch_up() -> f64 {
    let blocks = catch_up_blocks();
    let relay_store = MemoryStore::new();
    let mut chain = Chain::create(
        relay_store.clone(),
        &endra::identity::rules(),
        &common::key(1),
        1,
        vec![],
        b"g".to_vec(),
    )
    .await
    .expect("create");
    let key = common::key(1);
    let mut written = 1;
    while written < blocks {
        let n = (blocks - written).min(500) as usize;
        chain
            .append(&key, 2, vec![(vec![7u8; 100], vec![]); n])
            .await
            .expect("append");
        written += n as u64;
    }
    let id = chain.id();
    let mut relay = start(relay_store, 100, relay_config()).await;
    let address = listening(&mut relay).await;
    relay.handle.open(id, None).await.expect("open");

    let mut reader = start(MemoryStore::new(), 2, NodeConfig::default()).await;
    reader.handle.dial(address).await.expect("dial");
    let started = Instant::now();
    reader.handle.open(id, None).await.expect("join");
    count_reaches(&mut reader, id, blocks).await;
    started.elapsed().as_secs_f64()
}

struct Capacity {
    clients: usize,
    connect_s: f64,
    relay_rss_idle_bytes: u64,
    memory_per_client_bytes: u64,
    fanned_out: u64,
    fan_out_blocks_per_s: f64,
}

/// How long the relay may take to print its listening address.
const RELAY_START_DEADLINE: Duration = Duration::from_secs(30);

/// The address of a relay's `event=listening address=<multiaddr>` log line.
fn listening_address(line: &str) -> Option<Multiaddr> {
    if !line.contains("event=listening") {
        return None;
    }
    let (_, rest) = line.split_once("address=")?;
    rest.split_whitespace().next()?.parse().ok()
}

/// The `endra-relay` binary (`cargo build -p endra-relay`: debug build, dependencies
/// optimised) running in its own process, so its memory is measured alone.
struct RelayProcess {
    child: std::process::Child,
    address: Multiaddr,
    _dir: tempfile::TempDir,
}

impl RelayProcess {
    fn start() -> Self {
        use std::io::BufRead;
        let binary = std::env::var("ENDRA_RELAY_BIN")
            .unwrap_or_else(|_| "target/debug/endra-relay".to_string());
        let dir = tempfile::tempdir().expect("temp dir");
        let mut child = std::process::Command::new(&binary)
            .args(["--listen", "/ip4/127.0.0.1/tcp/0"])
            // Every bench client connects from 127.0.0.1: lift the per-IP cap.
            .args(["--max-connections-per-ip", "100000"])
            .arg("--key-file")
            .arg(dir.path().join("relay.key"))
            .arg("--webrtc-cert")
            .arg(dir.path().join("relay.pem"))
            .arg("--mailbox")
            .arg(dir.path().join("mailbox.redb"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{binary}: {e} (run `cargo build -p endra-relay` first)"));
        let stdout = child.stdout.take().expect("stdout");
        // A thread reads its output for as long as it runs (so it never blocks on a full
        // pipe) and hands the lines over while someone listens.
        let (send, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let _ = send.send(line);
            }
        });
        let deadline = Instant::now() + RELAY_START_DEADLINE;
        let address = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = lines.recv_timeout(left).unwrap_or_else(|e| {
                panic!(
                    "{binary} printed no `event=listening` line in {RELAY_START_DEADLINE:?}: {e}"
                )
            });
            if let Some(address) = listening_address(&line) {
                break address;
            }
        };
        RelayProcess {
            child,
            address,
            _dir: dir,
        }
    }

    /// The relay's resident memory in bytes (Linux).
    fn rss(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|kb| kb.parse::<u64>().ok())
            })
            .map_or(0, |kb| kb * 1024)
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `clients` client nodes (in this process) in chats of 10 members, all through one relay
/// process: the relay's memory growth per client, and the blocks per second it fans out
/// while every chat's creator writes 20 blocks.
async fn capacity(clients: usize) -> Capacity {
    let relay = RelayProcess::start();
    let chats = clients.div_ceil(CHAT_MEMBERS);
    let idle = relay.rss();

    let mut members: Vec<(BlockId, Running)> = Vec::with_capacity(clients);
    let started = Instant::now();
    for n in 0..clients {
        let store = MemoryStore::new();
        let chat = n / CHAT_MEMBERS;
        let id = if n % CHAT_MEMBERS == 0 {
            Chain::create(
                store.clone(),
                &endra::identity::rules(),
                &common::key(1),
                chat as u64,
                vec![],
                b"g".to_vec(),
            )
            .await
            .expect("create")
            .id()
        } else {
            members[chat * CHAT_MEMBERS].0
        };
        let node = start(store, (n % 250) as u8, NodeConfig::default()).await;
        node.handle.dial(relay.address.clone()).await.expect("dial");
        node.handle.open(id, None).await.expect("open");
        members.push((id, node));
    }
    // Every member holds its chat's genesis: joined through the relay. (Creators hold it.)
    for (n, (id, node)) in members.iter_mut().enumerate() {
        if n % CHAT_MEMBERS != 0 {
            count_reaches(node, *id, 1).await;
        }
    }
    let connect_s = started.elapsed().as_secs_f64();
    let loaded = relay.rss();

    let started = Instant::now();
    for chat in 0..chats {
        let (id, writer) = &members[chat * CHAT_MEMBERS];
        for b in 0..BLOCKS_PER_WRITER {
            writer
                .handle
                .append(*id, 3 + b as u64, vec![(vec![1u8; 200], vec![])])
                .await
                .expect("append");
        }
    }
    for (n, (id, node)) in members.iter_mut().enumerate() {
        if n % CHAT_MEMBERS != 0 {
            count_reaches(node, *id, 1 + BLOCKS_PER_WRITER as u64).await;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let fanned_out = (chats * BLOCKS_PER_WRITER * (CHAT_MEMBERS - 1)) as u64;
    Capacity {
        clients,
        connect_s,
        relay_rss_idle_bytes: idle,
        memory_per_client_bytes: loaded.saturating_sub(idle) / clients as u64,
        fanned_out,
        fan_out_blocks_per_s: fanned_out as f64 / elapsed,
    }
}

fn main() {
    let clients: usize = std::env::var("ENDRA_BENCH_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if smoke() { 20 } else { 1_000 });
    let catch_up_blocks = catch_up_blocks();
    let (catch_up_runs, capacity) = run_local(async {
        let mut runs = Vec::new();
        for _ in 0..if smoke() { 1 } else { 3 } {
            runs.push(catch_up().await);
            println!("catch-up run: {:.3} s", runs[runs.len() - 1]);
        }
        (runs, capacity(clients).await)
    });
    let mut sorted = catch_up_runs.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    println!("catch-up of {catch_up_blocks} blocks over libp2p: median {median:.3} s (runs {catch_up_runs:.3?})");
    println!(
        "relay capacity: {} clients in chats of {CHAT_MEMBERS} connected and joined in {:.1} s, \
         relay memory {} MiB idle + {} KiB per client, {} blocks fanned out at {:.0} blocks/s",
        capacity.clients,
        capacity.connect_s,
        capacity.relay_rss_idle_bytes >> 20,
        capacity.memory_per_client_bytes / 1024,
        capacity.fanned_out,
        capacity.fan_out_blocks_per_s
    );
    let json = format!(
        "{{\n  \"benchmark\": \"native libp2p on 127.0.0.1 (TCP, Noise, Yamux); clients in the bench process, endra-relay in its own\",\n  \
         \"catch_up_blocks\": {catch_up_blocks},\n  \"catch_up_native_s\": {median:.3},\n  \
         \"catch_up_target_s\": 1,\n  \"relay_clients\": {},\n  \"relay_chat_members\": {CHAT_MEMBERS},\n  \
         \"relay_connect_and_join_s\": {:.2},\n  \"relay_rss_idle_bytes\": {},\n  \"relay_memory_per_client_bytes\": {},\n  \
         \"fanned_out_blocks\": {},\n  \"fan_out_blocks_per_s\": {:.0}\n}}\n",
        capacity.clients,
        capacity.connect_s,
        capacity.relay_rss_idle_bytes,
        capacity.memory_per_client_bytes,
        capacity.fanned_out,
        capacity.fan_out_blocks_per_s
    );
    if smoke() {
        return;
    }
    std::fs::create_dir_all("bench/results").expect("results dir");
    std::fs::write("bench/results/network-native.json", json).expect("write results");
}
