//! The libp2p shell around the sans-IO sync core ([`crate::walytis::sync`]).
//!
//! One node task owns the [`libp2p::Swarm`] and one [`Sync`] per open chain. It maps:
//! - gossipsub topic = chain ID: [`Output::Publish`] is a gossip publish, and gossip messages
//!   are [`Input::Received`]; a peer subscribing to a chain's topic is [`Input::Connected`];
//! - [`Output::Send`] is a request on `/endra/walytis/sync/1` ([`protocol`]);
//! - a jittered timer is [`Input::Tick`] (anti-entropy).
//!
//! The same node runs in a client and in the relay. With `mailbox` on (the relay), it keeps a
//! replica of every chain a peer subscribes to, fetching its genesis on first sight: it can
//! read nothing (blocks are public metadata; private content arrives encrypted with the
//! offchain layer) and forge nothing (every block is signed).
//!
//! Relays share rendezvous with the relays they peer with ([`peering`]): a client asks its
//! relay for a chain's peers registered at those relays and dials them over `/p2p-circuit`.
//!
//! The files, by concern:
//! - `config.rs`: [`NodeConfig`], [`Limits`], [`NodeEvent`], [`NetError`];
//! - `handle.rs`: [`NodeHandle`] and the commands it sends to the node task;
//! - `node.rs`: the [`Node`] struct and its event loop, which dispatches to the files below;
//! - `discovery.rs`: relays, rendezvous registration and discovery, peering, circuit dials;
//! - `routing.rs`: each chain's [`Sync`] fed from and routed to gossipsub and request-response;
//! - `ip_limit.rs`: the cap on inbound connections per remote IP;
//! - `peer_index.rs`: the core's peer numbers ↔ libp2p peer IDs, forgotten on disconnect;
//! - `mailbox.rs`: the relay's replica of every subscribed chain, and joining a chain from
//!   its genesis;
//! - `content.rs`: offchain content served to peers and fetched from a chain's peers
//!   (`/endra/content/1`);
//! - `transport.rs`: the native and browser swarm builders (and WebRTC certificates).
//!
//! [`Sync`]: crate::walytis::sync::Sync
//! [`Output::Publish`]: crate::walytis::sync::Output::Publish
//! [`Output::Send`]: crate::walytis::sync::Output::Send
//! [`Input::Received`]: crate::walytis::sync::Input::Received
//! [`Input::Connected`]: crate::walytis::sync::Input::Connected
//! [`Input::Tick`]: crate::walytis::sync::Input::Tick

mod behaviour;
mod config;
mod content;
mod discovery;
mod handle;
mod held;
pub mod ip_limit;
pub mod logline;
mod mailbox;
mod node;
pub mod peer_index;
pub mod peering;
pub mod protocol;
pub mod redial;
mod routing;
pub mod session;
mod transport;

pub use behaviour::{Behaviour, BehaviourEvent};
pub use config::{Limits, NetError, NodeConfig, NodeEvent};
pub use handle::NodeHandle;
pub use node::Node;
#[cfg(target_arch = "wasm32")]
pub use transport::browser_swarm;
#[cfg(not(target_arch = "wasm32"))]
pub use transport::native_swarm;
#[cfg(all(feature = "webrtc", not(target_arch = "wasm32")))]
pub use transport::{native_swarm_with_webrtc, new_webrtc_certificate};

/// The certificate a WebRTC-Direct listener presents; its hash is part of the listen address
/// (`/certhash/…`), so a relay keeps it across restarts.
#[cfg(all(feature = "webrtc", not(target_arch = "wasm32")))]
pub use libp2p_webrtc::tokio::Certificate as WebRtcCertificate;

use logline::LogLine;

/// What a node keeps chains and content in: a block store that is also a content store
/// (memory, redb and IndexedDB are both).
pub trait NodeStore:
    crate::store::BlockStore + crate::offchain::ContentStore + Clone + 'static
{
}

impl<S: crate::store::BlockStore + crate::offchain::ContentStore + Clone + 'static> NodeStore
    for S
{
}

/// One structured line to standard error (native) or the console (browser).
fn log(line: LogLine) {
    // A closed standard error must not panic the node, as `eprintln!` would.
    #[cfg(not(target_arch = "wasm32"))]
    {
        use std::io::Write;
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }
    #[cfg(target_arch = "wasm32")]
    web_sys::console::warn_1(&line.to_string().into());
}
