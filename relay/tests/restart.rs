//! The real `endra-relay` binary killed and restarted on the same port, key file and mailbox:
//! its mailbox keeps what it logged as stored, it comes back as the same peer, and a client
//! that was connected to it reconnects by itself.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use endra::net::{NodeConfig, NodeEvent};
use endra::store::MemoryStore;
use endra::walytis::BlockId;
use libp2p::Multiaddr;
use tokio::sync::mpsc;

/// How long any one wait may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(60);

/// A running `endra-relay` and its standard output, line by line (read on a thread, so the
/// test's single-threaded runtime keeps driving the client nodes while it waits).
struct Relay {
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
    /// Its TCP address, with `/p2p/<peer id>`.
    address: Multiaddr,
}

/// Spawns `endra-relay` with its files in `dir`, listening on TCP `port` of 127.0.0.1 (0:
/// any), its standard output piped.
fn spawn(dir: &Path, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_endra-relay"))
        .arg("--listen")
        .arg(format!("/ip4/127.0.0.1/tcp/{port}"))
        .arg("--key-file")
        .arg(dir.join("relay.key"))
        .arg("--webrtc-cert")
        .arg(dir.join("relay-webrtc.pem"))
        .arg("--mailbox")
        .arg(dir.join("mailbox.redb"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn endra-relay")
}

/// The address a `listening` line of the relay announces, if it is one.
fn listening_address(line: &str) -> Option<Multiaddr> {
    let rest = line
        .contains("event=listening")
        .then(|| line.split("address=").nth(1))??;
    Some(
        rest.split_whitespace()
            .next()?
            .parse()
            .expect("a multiaddr"),
    )
}

impl Relay {
    /// Starts the relay with its files in `dir`, listening on TCP `port` of 127.0.0.1 (0: any).
    async fn start(dir: &Path, port: u16) -> Relay {
        let mut child = spawn(dir, port);
        let stdout = child.stdout.take().expect("stdout");
        let (send, lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if send.send(line).is_err() {
                    return;
                }
            }
        });
        let mut relay = Relay {
            child,
            lines,
            address: Multiaddr::empty(),
        };
        let line = relay.wait_for("event=listening").await;
        relay.address = listening_address(&line).expect("an address");
        relay
    }

    /// The TCP port it listens on.
    fn port(&self) -> u16 {
        self.address
            .iter()
            .find_map(|p| match p {
                libp2p::multiaddr::Protocol::Tcp(port) => Some(port),
                _ => None,
            })
            .expect("a TCP port")
    }

    /// Reads its output until a line containing every one of the space-separated `parts`.
    async fn wait_for(&mut self, parts: &str) -> String {
        let wanted: Vec<&str> = parts.split(' ').collect();
        let read = async {
            loop {
                let line = self
                    .lines
                    .recv()
                    .await
                    .unwrap_or_else(|| panic!("endra-relay exited before printing {parts:?}"));
                if wanted.iter().all(|part| line.contains(part)) {
                    return line;
                }
            }
        };
        tokio::time::timeout(PATIENCE, read)
            .await
            .unwrap_or_else(|_| panic!("endra-relay never printed {parts:?}"))
    }

    /// Stops it as Ctrl-C does (SIGINT) and waits for it to exit on its own: it must print
    /// `shutting_down` and exit successfully within `PATIENCE`, however busy it is.
    async fn interrupt(mut self) {
        let status = Command::new("kill")
            .arg("-INT")
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -INT failed");
        self.wait_for("event=shutting_down signal=SIGINT").await;
        let started = std::time::Instant::now();
        loop {
            if let Some(exit) = self.child.try_wait().expect("try_wait") {
                assert!(
                    exit.success(),
                    "endra-relay exited with {exit} after SIGINT"
                );
                return;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "endra-relay still running after SIGINT"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills it with SIGKILL: no shutdown code runs.
    fn kill(mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("wait");
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The native test helpers of the `endra` crate (nodes over TCP on 127.0.0.1), shared.
#[path = "../../tests/common/net.rs"]
mod net;

use net::{count_reaches, new_chain, order, run_local, start, wait_for, Running};

/// A deterministic device key, as `tests/common` gives its nodes.
fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// A client node with a fast anti-entropy tick.
async fn client(store: MemoryStore, seed: u8) -> Running {
    let config = NodeConfig {
        tick: Duration::from_millis(500),
        ..NodeConfig::default()
    };
    start(store, seed, config).await
}

/// A writer that created a chain and uses `relay` (kept, and dialled again whenever lost).
async fn writer_using(relay: &Relay) -> (Running, BlockId) {
    let (store, chain) = new_chain(1, 1).await;
    let writer = client(store, 1).await;
    writer
        .handle
        .use_relay(relay.address.clone())
        .await
        .unwrap();
    writer.handle.open(chain, None).await.unwrap();
    (writer, chain)
}

/// A new node, never online with anyone before, joins `chain` through `relay` alone and
/// waits until it holds `count` blocks.
async fn fresh_reader(relay: &Relay, chain: BlockId, count: u64) -> Running {
    let mut reader = client(MemoryStore::new(), 2).await;
    reader.handle.dial(relay.address.clone()).await.unwrap();
    reader.handle.open(chain, None).await.unwrap();
    count_reaches(&mut reader, chain, count).await;
    reader
}

#[test]
fn a_block_the_relay_logged_as_stored_survives_sigkill() {
    run_local(async {
        let dir = tempfile::tempdir().unwrap();
        let mut relay = Relay::start(dir.path(), 0).await;
        let (store, chain) = new_chain(1, 1).await;
        let writer = client(store, 1).await;
        writer.handle.dial(relay.address.clone()).await.unwrap();
        writer.handle.open(chain, None).await.unwrap();
        writer
            .handle
            .append(chain, 2, vec![(b"kept".to_vec(), vec![])])
            .await
            .unwrap();
        relay.wait_for("event=mailbox_stored blocks=2").await;
        let (address, port) = (relay.address.clone(), relay.port());
        relay.kill();
        drop(writer);

        let relay = Relay::start(dir.path(), port).await;
        assert_eq!(relay.address, address, "same peer ID on the same address");
        fresh_reader(&relay, chain, 2).await;
    });
}

#[test]
fn a_client_reconnects_after_its_relay_restarts_and_nothing_written_meanwhile_is_stranded() {
    run_local(async {
        let dir = tempfile::tempdir().unwrap();
        let mut relay = Relay::start(dir.path(), 0).await;
        let (mut writer, chain) = writer_using(&relay).await;
        let batch = |label: &str| vec![(label.as_bytes().to_vec(), vec![]); 10];
        writer
            .handle
            .append(chain, 2, batch("before"))
            .await
            .unwrap();
        relay.wait_for("event=mailbox_stored blocks=11").await;

        // Killed, and written to while it is down: those blocks reach nobody yet.
        let port = relay.port();
        relay.kill();
        let lost = |e: &NodeEvent| {
            matches!(
                e,
                NodeEvent::Connection {
                    connected: false,
                    ..
                }
            )
        };
        wait_for(&mut writer, lost).await;
        assert!(
            !writer.handle.is_synced(chain).await.unwrap(),
            "no peer: not synced"
        );
        writer.handle.append(chain, 3, batch("down")).await.unwrap();

        // Back on the same port and files: the writer redials by itself and pushes them.
        let mut relay = Relay::start(dir.path(), port).await;
        relay.wait_for("event=mailbox_stored blocks=21").await;
        writer
            .handle
            .append(chain, 4, batch("after"))
            .await
            .unwrap();
        relay.wait_for("event=mailbox_stored blocks=31").await;
        let synced = |e: &NodeEvent| matches!(e, NodeEvent::Synced { chain: c } if *c == chain);
        wait_for(&mut writer, synced).await;

        // A device that was never online with the writer gets every block, in the same order.
        let reader = fresh_reader(&relay, chain, 31).await;
        assert_eq!(
            order(&reader.store, chain).await,
            order(&writer.store, chain).await
        );
    });
}

#[test]
fn a_relay_killed_in_the_middle_of_a_stream_of_writes_loses_nothing() {
    run_local(async {
        let dir = tempfile::tempdir().unwrap();
        let mut relay = Relay::start(dir.path(), 0).await;
        let (writer, chain) = writer_using(&relay).await;
        let handle = writer.handle.clone();
        let stream = tokio::task::spawn_local(async move {
            for n in 0..80u64 {
                let item = vec![(format!("stream {n}").into_bytes(), vec![])];
                handle.append(chain, 2 + n, item).await.unwrap();
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        });
        relay.wait_for("event=mailbox_stored blocks=20").await;
        let port = relay.port();
        relay.kill();
        let mut relay = Relay::start(dir.path(), port).await;
        stream.await.unwrap();
        relay.wait_for("event=mailbox_stored blocks=81").await;
        let reader = fresh_reader(&relay, chain, 81).await;
        assert_eq!(
            order(&reader.store, chain).await,
            order(&writer.store, chain).await
        );
    });
}

#[test]
fn a_relay_interrupted_in_the_middle_of_a_stream_of_writes_stops_and_loses_nothing() {
    // The relay once made its Ctrl-C listener anew on every turn of its event loop: a SIGINT
    // landing while it handled a stored block was lost and the relay never stopped.
    run_local(async {
        let dir = tempfile::tempdir().unwrap();
        let mut relay = Relay::start(dir.path(), 0).await;
        let (writer, chain) = writer_using(&relay).await;
        let handle = writer.handle.clone();
        let stream = tokio::task::spawn_local(async move {
            for n in 0..80u64 {
                let item = vec![(format!("stream {n}").into_bytes(), vec![])];
                handle.append(chain, 2 + n, item).await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        relay.wait_for("event=mailbox_stored blocks=20").await;
        let port = relay.port();
        relay.interrupt().await;
        let mut relay = Relay::start(dir.path(), port).await;
        stream.await.unwrap();
        relay.wait_for("event=mailbox_stored blocks=81").await;
        let reader = fresh_reader(&relay, chain, 81).await;
        assert_eq!(
            order(&reader.store, chain).await,
            order(&writer.store, chain).await
        );
    });
}

#[test]
fn a_relay_whose_log_reader_went_away_keeps_serving() {
    // Its output is a pipe nobody reads any more (a supervisor that exited): logging the
    // next connection must not take the relay down, as `println!` would.
    run_local(async {
        let dir = tempfile::tempdir().unwrap();
        let mut child = spawn(dir.path(), 0);
        let mut output = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        let address = loop {
            line.clear();
            assert!(output.read_line(&mut line).unwrap() > 0, "the relay exited");
            if let Some(address) = listening_address(&line) {
                break address;
            }
        };
        drop(output);
        let (store, chain) = new_chain(1, 1).await;
        let writer = client(store, 1).await;
        writer.handle.use_relay(address.clone()).await.unwrap();
        writer.handle.open(chain, None).await.unwrap();
        let item = vec![(b"after the log closed".to_vec(), vec![])];
        writer.handle.append(chain, 2, item).await.unwrap();
        let mut reader = client(MemoryStore::new(), 2).await;
        reader.handle.dial(address).await.unwrap();
        reader.handle.open(chain, None).await.unwrap();
        count_reaches(&mut reader, chain, 2).await;
        assert!(
            child.try_wait().unwrap().is_none(),
            "the relay is still running"
        );
        let _ = child.kill();
        let _ = child.wait();
    });
}
