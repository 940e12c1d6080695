//! `endra-relay`: the native relay.
//!
//! Runs the Endra network node in relay mode: TCP and WebSocket listeners, circuit relay v2
//! and rendezvous servers, gossipsub for every chain its users use, and the mailbox, which
//! keeps a replica of each such chain in a redb file so that peers who are never online at
//! the same time still converge. Browsers reach it over WebSocket or WebRTC-Direct.
//!
//! It logs in logfmt ([`LogLine`]): events of normal operation (`started`, `listening`,
//! `connection`, `mailbox_stored`, `shutting_down`) on standard output, refusals and
//! failures (`level=warn`, `level=error`) on standard error.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use endra::net::logline::LogLine;
use endra::net::{
    native_swarm_with_webrtc, new_webrtc_certificate, Limits, Node, NodeConfig, NodeEvent,
    WebRtcCertificate,
};
use endra::offchain::store::root_hex;
use endra::offchain::ContentStatus;
use endra::store::{MemoryStore, RedbStore};
use futures::StreamExt;
use libp2p::{identity, Multiaddr};

const USAGE: &str = "\
usage: endra-relay [options]

options:
  --listen <multiaddr>   address to listen on (repeatable; default
                         /ip4/127.0.0.1/tcp/4001, /ip4/127.0.0.1/tcp/4002/ws and
                         /ip4/127.0.0.1/udp/4003/webrtc-direct)
  --key-file <path>      file holding the relay's identity key (default ./relay.key)
  --webrtc-cert <path>   PEM file of the WebRTC-Direct certificate (default ./relay-webrtc.pem)
  --mailbox <path>       redb file of the store-and-forward mailbox (default ./mailbox.redb)
  --no-mailbox           do not replicate chains (relay and rendezvous only)
  --peer <multiaddr>     another relay to connect to (repeatable)
  --max-connections <n>  established connections in total (default 4096)
  --max-connections-per-ip <n>  inbound connections from one IP (default 128)
  --mailbox-max-chains <n>    chains the mailbox replicates (default 100000)
  --mailbox-chain-blocks <n>  blocks kept per chain (default 1000000)
  --mailbox-content-bytes <n> sealed bytes of offchain content kept in all (default 1073741824)
  --circuit-bytes <n>    bytes one relayed circuit may carry (default 67108864)
  -h, --help             print this help
";

/// The relay's configuration, from flags.
#[derive(Debug, PartialEq, Eq)]
struct Config {
    listen: Vec<String>,
    key_file: PathBuf,
    webrtc_cert: PathBuf,
    mailbox: Option<PathBuf>,
    peers: Vec<String>,
    limits: Limits,
}

/// A command line the relay cannot run with.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
enum FlagError {
    #[error("{0} needs a value")]
    MissingValue(String),
    #[error("unknown flag {0}")]
    Unknown(String),
    #[error("{0:?} is not a multiaddr (it must start with '/')")]
    NotMultiaddr(String),
    #[error("{flag} needs a positive number, not {value:?}")]
    NotNumber { flag: String, value: String },
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
enum Command {
    Run(Box<Config>),
    Help,
}

fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, FlagError> {
    let mut config = Config {
        listen: Vec::new(),
        key_file: PathBuf::from("relay.key"),
        webrtc_cert: PathBuf::from("relay-webrtc.pem"),
        mailbox: Some(PathBuf::from("mailbox.redb")),
        peers: Vec::new(),
        limits: Limits::default(),
    };
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| FlagError::MissingValue(flag.clone()))
        };
        let multiaddr = |v: String| {
            if v.starts_with('/') {
                Ok(v)
            } else {
                Err(FlagError::NotMultiaddr(v))
            }
        };
        let number = |v: String| match v.parse::<u64>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(FlagError::NotNumber {
                flag: flag.clone(),
                value: v,
            }),
        };
        match flag.as_str() {
            "--listen" => config.listen.push(multiaddr(value()?)?),
            "--peer" => config.peers.push(multiaddr(value()?)?),
            "--key-file" => config.key_file = value()?.into(),
            "--webrtc-cert" => config.webrtc_cert = value()?.into(),
            "--mailbox" => config.mailbox = Some(value()?.into()),
            "--no-mailbox" => config.mailbox = None,
            "--max-connections" => {
                config.limits.max_connections = u32::try_from(number(value()?)?).unwrap_or(u32::MAX)
            }
            "--max-connections-per-ip" => {
                config.limits.max_connections_per_ip =
                    u32::try_from(number(value()?)?).unwrap_or(u32::MAX)
            }
            "--mailbox-max-chains" => {
                config.limits.mailbox_max_chains =
                    usize::try_from(number(value()?)?).unwrap_or(usize::MAX)
            }
            "--mailbox-chain-blocks" => config.limits.mailbox_chain_blocks = number(value()?)?,
            "--mailbox-content-bytes" => {
                config.limits.mailbox_content_bytes = number(value()?)?;
            }
            "--circuit-bytes" => config.limits.circuit_bytes = number(value()?)?,
            "-h" | "--help" => return Ok(Command::Help),
            _ => return Err(FlagError::Unknown(flag)),
        }
    }
    if config.listen.is_empty() {
        config.listen = vec![
            "/ip4/127.0.0.1/tcp/4001".into(),
            "/ip4/127.0.0.1/tcp/4002/ws".into(),
            "/ip4/127.0.0.1/udp/4003/webrtc-direct".into(),
        ];
    }
    Ok(Command::Run(Box::new(config)))
}

/// The relay's identity: a stable peer ID kept in the key file (32 secret bytes).
fn load_or_create_key(path: &Path) -> Result<identity::Keypair, String> {
    match std::fs::read(path) {
        Ok(mut secret) => identity::Keypair::ed25519_from_bytes(&mut secret)
            .map_err(|e| format!("key file {} is not an Ed25519 key: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
            std::fs::write(path, key.as_bytes())
                .map_err(|e| format!("cannot write key file {}: {e}", path.display()))?;
            let mut secret = key.to_bytes();
            identity::Keypair::ed25519_from_bytes(&mut secret).map_err(|e| e.to_string())
        }
        Err(e) => Err(format!("cannot read key file {}: {e}", path.display())),
    }
}

/// The WebRTC-Direct certificate, kept in a PEM file so the `/certhash/` of the relay's
/// address survives restarts.
fn load_or_create_certificate(path: &Path) -> Result<WebRtcCertificate, String> {
    match std::fs::read_to_string(path) {
        Ok(pem) => WebRtcCertificate::from_pem(&pem)
            .map_err(|e| format!("{} is not a WebRTC certificate: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let certificate = new_webrtc_certificate().map_err(|e| e.to_string())?;
            std::fs::write(path, certificate.serialize_pem())
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            Ok(certificate)
        }
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

async fn run(config: Config) -> Result<(), String> {
    let key = load_or_create_key(&config.key_file)?;
    let certificate = load_or_create_certificate(&config.webrtc_cert)?;
    let node_config = NodeConfig {
        mailbox: config.mailbox.is_some(),
        relay_server: true,
        limits: config.limits.clone(),
        ..NodeConfig::default()
    };
    let swarm = native_swarm_with_webrtc(key, &node_config, certificate)
        .await
        .map_err(|e| e.to_string())?;
    match &config.mailbox {
        Some(path) => {
            let store =
                RedbStore::open(path).map_err(|e| format!("mailbox {}: {e}", path.display()))?;
            serve(config, node_config, swarm, store).await
        }
        // Without a mailbox the node replicates nothing; its store stays empty.
        None => serve(config, node_config, swarm, MemoryStore::default()).await,
    }
}

/// Prints one log line on standard output. A closed output (the supervisor went away) must
/// not take the relay down with it, as `println!` would: the line is dropped.
fn out(line: impl std::fmt::Display) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

async fn serve<S: endra::net::NodeStore + 'static>(
    config: Config,
    node_config: NodeConfig,
    swarm: libp2p::Swarm<endra::net::Behaviour>,
    store: S,
) -> Result<(), String> {
    // The relay signs no blocks: its node has no device key.
    let (node, handle, mut events) = Node::new(swarm, store, endra::identity::rules(), node_config);
    let peer_id = handle.peer_id();
    let local = tokio::task::LocalSet::new();
    local.spawn_local(node.run());
    local
        .run_until(async move {
            for address in &config.listen {
                let address: Multiaddr = address.parse().map_err(|e| format!("{address}: {e}"))?;
                handle.listen(address).await.map_err(|e| e.to_string())?;
            }
            for peer in &config.peers {
                let address: Multiaddr = peer.parse().map_err(|e| format!("{peer}: {e}"))?;
                // A peer relay named by its ID is kept: dialled again whenever it is lost.
                if matches!(
                    address.iter().last(),
                    Some(libp2p::multiaddr::Protocol::P2p(_))
                ) {
                    handle.use_relay(address).await.map_err(|e| e.to_string())?;
                } else {
                    handle.dial(address).await.map_err(|e| e.to_string())?;
                }
            }
            out(LogLine::info("started").field("peer", peer_id));
            // One listener for the whole run, made before the loop: a `ctrl_c()` made anew on
            // every turn misses a signal that lands while an event is handled, and the relay,
            // its default handler replaced, would then never stop.
            let shutdown = shutdown_signal();
            tokio::pin!(shutdown);
            let mut connections: u64 = 0;
            loop {
                tokio::select! {
                    event = events.next() => match event {
                        Some(NodeEvent::Listening(address)) => {
                            handle.add_external_address(address.clone());
                            let dial = format!("{address}/p2p/{peer_id}");
                            out(LogLine::info("listening").field("address", dial));
                        }
                        Some(NodeEvent::Changed { chain, count, .. }) => {
                            let line = LogLine::info("mailbox_stored")
                                .field("chain", chain)
                                .field("blocks", count);
                            out(line);
                        }
                        Some(NodeEvent::Connection { peer, connected }) => {
                            if connected {
                                connections += 1;
                            } else {
                                connections = connections.saturating_sub(1);
                            }
                            let line = LogLine::info("connection")
                                .field("peer", peer)
                                .field("connected", connected)
                                .field("peers", connections);
                            out(line);
                        }
                        Some(NodeEvent::Content {
                            chain,
                            root,
                            status: ContentStatus::Available,
                        }) => {
                            let line = LogLine::info("mailbox_content_stored")
                                .field("chain", chain)
                                .field("root", root_hex(&root));
                            out(line);
                        }
                        Some(NodeEvent::Content {
                            chain,
                            root,
                            status: ContentStatus::Erased,
                        }) => {
                            // A member showed the content's erase secret: every byte dropped.
                            let line = LogLine::info("mailbox_content_erased")
                                .field("chain", chain)
                                .field("root", root_hex(&root));
                            out(line);
                        }
                        Some(
                            NodeEvent::ChainPeer { .. }
                            | NodeEvent::Synced { .. }
                            | NodeEvent::Content { .. }
                            | NodeEvent::ContentFetched { .. }
                            | NodeEvent::ContentKept { .. },
                        ) => {}
                        None => return Err("the network node stopped".to_string()),
                    },
                    signal = &mut shutdown => {
                        // Every mailbox commit is a finished redb transaction: nothing to flush.
                        out(LogLine::info("shutting_down").field("signal", signal?));
                        return Ok(());
                    }
                }
            }
        })
        .await
}

/// Resolves with the signal's name at the first SIGINT (Ctrl-C) or SIGTERM (a service
/// manager's stop).
async fn shutdown_signal() -> Result<&'static str, String> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt =
        signal(SignalKind::interrupt()).map_err(|e| format!("cannot listen for SIGINT: {e}"))?;
    let mut terminate =
        signal(SignalKind::terminate()).map_err(|e| format!("cannot listen for SIGTERM: {e}"))?;
    tokio::select! {
        _ = interrupt.recv() => Ok("SIGINT"),
        _ = terminate.recv() => Ok("SIGTERM"),
    }
}

fn main() -> ExitCode {
    let config = match parse(std::env::args().skip(1)) {
        Ok(Command::Run(config)) => *config,
        Ok(Command::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("endra-relay: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // The node task (swarm and mailbox) runs on this thread; libp2p's connection tasks run on
    // the workers, so a gossip message is forwarded while the mailbox commits the block.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("{}", LogLine::error("runtime_failed").field("error", e));
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(run(config));
    // Do not wait on the workers' leftover connection tasks: a stop is a stop.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", LogLine::error("stopped").field("error", e));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_are_parsed() {
        let Ok(Command::Run(config)) = parse(args(&[
            "--listen",
            "/ip4/127.0.0.1/tcp/9/ws",
            "--peer",
            "/ip4/127.0.0.1/tcp/10/ws",
            "--mailbox",
            "m.redb",
        ])) else {
            panic!("flags must parse");
        };
        assert_eq!(config.listen, vec!["/ip4/127.0.0.1/tcp/9/ws"]);
        assert_eq!(config.peers, vec!["/ip4/127.0.0.1/tcp/10/ws"]);
        assert_eq!(config.mailbox, Some(PathBuf::from("m.redb")));
        let Ok(Command::Run(config)) = parse(args(&[
            "--no-mailbox",
            "--max-connections",
            "7",
            "--max-connections-per-ip",
            "3",
            "--mailbox-content-bytes",
            "5000",
        ])) else {
            panic!("flags must parse");
        };
        assert_eq!(config.mailbox, None);
        assert_eq!(config.limits.max_connections, 7);
        assert_eq!(config.limits.max_connections_per_ip, 3);
        assert_eq!(config.limits.mailbox_content_bytes, 5000);
        assert_eq!(config.listen.len(), 3, "default listeners");
    }

    #[test]
    fn bad_flags_are_typed_errors() {
        assert_eq!(
            parse(args(&["--bogus"])),
            Err(FlagError::Unknown("--bogus".into()))
        );
        assert_eq!(
            parse(args(&["--listen"])),
            Err(FlagError::MissingValue("--listen".into()))
        );
        assert_eq!(
            parse(args(&["--peer", "localhost"])),
            Err(FlagError::NotMultiaddr("localhost".into()))
        );
        assert_eq!(
            parse(args(&["--circuit-bytes", "lots"])),
            Err(FlagError::NotNumber {
                flag: "--circuit-bytes".into(),
                value: "lots".into()
            })
        );
        assert_eq!(parse(args(&["-h"])), Ok(Command::Help));
    }
}
