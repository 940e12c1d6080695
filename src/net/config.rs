//! The node's public vocabulary: its options ([`NodeConfig`], [`Limits`]), what it reports
//! ([`NodeEvent`]) and how it fails ([`NetError`]).

use std::time::Duration;

use libp2p::{Multiaddr, PeerId};

use crate::offchain::{ContentRoot, ContentStatus, TransferError};
#[cfg(doc)]
use crate::walytis::{sync::Sync, Chain};
use crate::walytis::{BlockId, ChainError, Entry};

/// What went wrong in the network shell.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// The chain operation failed.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The node does not sync this chain.
    #[error("chain {0} is not open on this node")]
    UnknownChain(BlockId),
    /// Building the transport or behaviour failed.
    #[error("network setup failed: {0}")]
    Setup(String),
    /// Listening or dialling failed.
    #[error("cannot reach {address}: {reason}")]
    Unreachable {
        /// The address.
        address: String,
        /// Why.
        reason: String,
    },
    /// The node task has stopped.
    #[error("the network node has stopped")]
    Stopped,
    /// The node was built without a device key (a relay): it stores and forwards blocks but
    /// signs none.
    #[error("this node has no device key: it relays blocks but cannot write them")]
    NoDeviceKey,
    /// Fetching offchain content failed for good (erased, or the store failed).
    #[error(transparent)]
    Content(#[from] TransferError),
    /// A content this node would fetch does not fit in its content store's quota
    /// ([`Limits::content_store_bytes`]) beside what it keeps and is fetching: not fetched,
    /// until erasures make room (or a node started with a larger quota asks).
    #[error("the content store's quota of {quota} bytes has no room for {needed} more")]
    ContentQuota {
        /// The quota, in sealed bytes.
        quota: u64,
        /// What the content would add, in sealed bytes counted as whole segments.
        needed: u64,
    },
}

/// Options of a node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Replicate every chain a peer subscribes to (the relay's mailbox).
    pub mailbox: bool,
    /// Serve circuit relay v2 and rendezvous (the relay).
    pub relay_server: bool,
    /// Mean interval of anti-entropy heads exchanges.
    pub tick: Duration,
    /// Caps on connections, circuits and the mailbox.
    pub limits: Limits,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            mailbox: false,
            relay_server: false,
            tick: Duration::from_secs(5),
            limits: Limits::default(),
        }
    }
}

/// Caps that keep one node (above all the relay) within its means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Established connections in total; more are refused.
    pub max_connections: u32,
    /// Established connections to one peer.
    pub max_connections_per_peer: u32,
    /// Inbound connections from one IP address (relayed circuits are not counted): one host
    /// cannot take every connection.
    pub max_connections_per_ip: u32,
    /// Chains the mailbox replicates; subscriptions to further chains are not replicated.
    pub mailbox_max_chains: usize,
    /// Blocks the mailbox keeps of one chain; beyond, it stops accepting the chain's blocks
    /// (its members still sync directly with each other).
    pub mailbox_chain_blocks: u64,
    /// Sealed bytes of offchain content the mailbox keeps in all; offers beyond are refused.
    pub mailbox_content_bytes: u64,
    /// Offered contents the mailbox fetches at once; offers beyond are refused.
    pub mailbox_fetches: usize,
    /// How long the mailbox keeps asking for an offered content while no piece of it
    /// arrives; then it gives up, and gives back the quota if it got nothing of it (an
    /// offer nobody serves cannot hold the mailbox's room or memory for good).
    pub mailbox_fetch_patience: Duration,
    /// How long the mailbox waits for the genesis of a chain a peer subscribed to; a chain
    /// no peer sends the genesis of by then (a bogus subscription) is given up.
    pub mailbox_join_timeout: Duration,
    /// Chains one peer's subscriptions may have the mailbox waiting for at once.
    pub mailbox_joins_per_peer: usize,
    /// Sealed bytes of offchain content a member's node keeps in all (a relay's mailbox
    /// has [`Limits::mailbox_content_bytes`] instead), counted as whole 64 KiB segments: a
    /// content that does not fit beside what the store holds and what is being fetched is
    /// not fetched ([`NetError::ContentQuota`]), nor kept when it comes inline. A peer of
    /// a chain cannot fill a member's disk with contents each within the chain's limit. The
    /// device's own posts are not refused, but they count.
    pub content_store_bytes: u64,
    /// Bytes one relayed circuit may carry in each direction.
    pub circuit_bytes: u64,
    /// How long one relayed circuit may last before the client renews it.
    pub circuit_duration: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 4096,
            max_connections_per_peer: 8,
            max_connections_per_ip: 128,
            mailbox_max_chains: 100_000,
            mailbox_chain_blocks: 1_000_000,
            mailbox_content_bytes: 1 << 30,
            mailbox_fetches: 256,
            mailbox_fetch_patience: Duration::from_secs(600),
            mailbox_join_timeout: Duration::from_secs(60),
            mailbox_joins_per_peer: 16,
            content_store_bytes: 4 << 30,
            circuit_bytes: 64 << 20,
            circuit_duration: Duration::from_secs(3600),
        }
    }
}

/// Something the node reports to its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeEvent {
    /// The node listens on this address.
    Listening(Multiaddr),
    /// A chain gained blocks; read them with [`Chain::since`].
    Changed {
        /// The chain.
        chain: BlockId,
        /// Its block count now.
        count: u64,
        /// The new blocks in arrival order when few (a live message: no store read needed to
        /// show it), `None` after a larger batch (a catch-up) or a change made elsewhere.
        blocks: Option<Vec<Entry>>,
    },
    /// A connection to a peer opened (`true`) or its last connection closed (`false`).
    Connection {
        /// The peer.
        peer: PeerId,
        /// Whether the node is now connected to it.
        connected: bool,
    },
    /// A chain caught up with its peers: a peer's heads were heard and every block they named
    /// is stored (see [`Sync::is_synced`]). Reported each time it becomes true again.
    Synced {
        /// The chain.
        chain: BlockId,
    },
    /// A content being fetched got a verified tree or segment (see
    /// [`super::NodeHandle::fetch_content`]).
    Content {
        /// The chain the content belongs to.
        chain: BlockId,
        /// The content's root.
        root: ContentRoot,
        /// Where it stands now: fetching with bytes done of total, or available.
        status: ContentStatus,
    },
    /// A fetch ended (done, erased, or given up): the sealed bytes it took from peers —
    /// none for what the store held already.
    ContentFetched {
        /// The chain the content belongs to.
        chain: BlockId,
        /// The content's root.
        root: ContentRoot,
        /// Sealed bytes received and kept by this fetch.
        bytes: u64,
    },
    /// One of this node's relays holds a content this node offered it, all of it, every
    /// segment verified there (its word: see [`crate::offchain::ContentRequest::Kept`]):
    /// the chain's peers can have it from the relay while this node is offline.
    ContentKept {
        /// The chain the content belongs to.
        chain: BlockId,
        /// The content's root.
        root: ContentRoot,
        /// The relay.
        relay: PeerId,
    },
    /// A peer of a chain joined or left.
    ChainPeer {
        /// The chain.
        chain: BlockId,
        /// The peer.
        peer: PeerId,
        /// Joined (true) or left (false).
        joined: bool,
    },
}
