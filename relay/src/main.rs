//! `endra-relay`: the native relay.
//!
//! Today it parses its configuration, opens its mailbox store and reports what it would
//! serve. The libp2p listeners (WebSocket, WebRTC-Direct), circuit relay, rendezvous,
//! gossipsub and the mailbox sync protocol arrive with the networking layer.

use std::path::PathBuf;
use std::process::ExitCode;

use endra::store::RedbStore;

const USAGE: &str = "\
usage: endra-relay [options]

options:
  --listen <multiaddr>   address to listen on (repeatable; default
                         /ip4/127.0.0.1/tcp/4001/ws and /ip4/127.0.0.1/udp/4001/webrtc-direct)
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
            "/ip4/127.0.0.1/tcp/4001/ws".into(),
            "/ip4/127.0.0.1/udp/4001/webrtc-direct".into(),
        ];
    }
    Ok(Command::Run(config))
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
    let store = match RedbStore::open(&config.mailbox) {
        Ok(store) => store,
        Err(e) => {
            eprintln!("endra-relay: mailbox {}: {e}", config.mailbox.display());
            return ExitCode::FAILURE;
        }
    };
    drop(store);
    println!("endra-relay: mailbox {} opened", config.mailbox.display());
    println!("endra-relay: key file {}", config.key_file.display());
    for addr in &config.listen {
        println!("endra-relay: configured listen address {addr}");
    }
    for peer in &config.peers {
        println!("endra-relay: configured peer relay {peer}");
    }
    eprintln!("endra-relay: networking is not built yet (see the README); exiting");
    ExitCode::SUCCESS
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
