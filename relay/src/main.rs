//! `endra-relay`: the native relay.
//!
//! Runs the Endra network node in relay mode: TCP and WebSocket listeners, circuit relay v2
//! and rendezvous servers, gossipsub for every chain its users use, and the mailbox, which
//! keeps a replica of each such chain in a redb file so that peers who are never online at
//! the same time still converge. WebRTC-Direct is not served yet.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use endra::net::{native_swarm, Node, NodeConfig, NodeEvent};
use endra::store::RedbStore;
use futures::StreamExt;
use libp2p::{identity, Multiaddr};

const USAGE: &str = "\
usage: endra-relay [options]

options:
  --listen <multiaddr>   address to listen on (repeatable; default
                         /ip4/127.0.0.1/tcp/4001 and /ip4/127.0.0.1/tcp/4002/ws)
  --key-file <path>      file holding the relay's identity key (default ./relay.key)
  --mailbox <path>       redb file of the store-and-forward mailbox (default ./mailbox.redb)
  --peer <multiaddr>     another relay to connect to (repeatable)
  -h, --help             print this help
";

/// The relay's configuration, from flags.
#[derive(Debug, PartialEq, Eq)]
struct Config {
    listen: Vec<String>,
    key_file: PathBuf,
    mailbox: PathBuf,
    peers: Vec<String>,
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
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
enum Command {
    Run(Config),
    Help,
}

fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, FlagError> {
    let mut config = Config {
        listen: Vec::new(),
        key_file: PathBuf::from("relay.key"),
        mailbox: PathBuf::from("mailbox.redb"),
        peers: Vec::new(),
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
        match flag.as_str() {
            "--listen" => config.listen.push(multiaddr(value()?)?),
            "--peer" => config.peers.push(multiaddr(value()?)?),
            "--key-file" => config.key_file = value()?.into(),
            "--mailbox" => config.mailbox = value()?.into(),
            "-h" | "--help" => return Ok(Command::Help),
            _ => return Err(FlagError::Unknown(flag)),
        }
    }
    if config.listen.is_empty() {
        config.listen = vec![
            "/ip4/127.0.0.1/tcp/4001".into(),
            "/ip4/127.0.0.1/tcp/4002/ws".into(),
        ];
    }
    Ok(Command::Run(config))
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

async fn run(config: Config) -> Result<(), String> {
    let store = RedbStore::open(&config.mailbox)
        .map_err(|e| format!("mailbox {}: {e}", config.mailbox.display()))?;
    let key = load_or_create_key(&config.key_file)?;
    let node_config = NodeConfig {
        mailbox: true,
        relay_server: true,
        ..NodeConfig::default()
    };
    let swarm = native_swarm(key, &node_config)
        .await
        .map_err(|e| e.to_string())?;
    // The relay signs no blocks; its node still needs a key for the API it never uses.
    let unused = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
    let (node, handle, mut events) = Node::new(swarm, store, unused, node_config);
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
                handle.dial(address).await.map_err(|e| e.to_string())?;
            }
            println!("endra-relay: peer id {peer_id}");
            loop {
                tokio::select! {
                    event = events.next() => match event {
                        Some(NodeEvent::Listening(address)) => {
                            handle.add_external_address(address.clone());
                            println!("endra-relay: listening on {address}/p2p/{peer_id}");
                        }
                        Some(NodeEvent::Changed { chain, count }) => {
                            println!("endra-relay: mailbox holds {count} blocks of {chain}");
                        }
                        Some(NodeEvent::ChainPeer { .. } | NodeEvent::Connection { .. }) => {}
                        None => return Err("the network node stopped".to_string()),
                    },
                    _ = tokio::signal::ctrl_c() => {
                        // Every mailbox commit is a finished redb transaction: nothing to flush.
                        println!("endra-relay: shutting down");
                        return Ok(());
                    }
                }
            }
        })
        .await
}

fn main() -> ExitCode {
    let config = match parse(std::env::args().skip(1)) {
        Ok(Command::Run(config)) => config,
        Ok(Command::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("endra-relay: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("endra-relay: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("endra-relay: {e}");
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
        assert_eq!(config.mailbox, PathBuf::from("m.redb"));
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
        assert_eq!(parse(args(&["-h"])), Ok(Command::Help));
    }
}
