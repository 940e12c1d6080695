//! The owner's side of a node: [`NodeHandle`] sends [`Command`]s down a channel to the node
//! task and awaits their replies, so it is cheap to clone and usable from any task.

use futures::channel::{mpsc, oneshot};
use libp2p::{Multiaddr, PeerId};

use super::NetError;
#[cfg(doc)]
use super::{session, NodeEvent};
use crate::offchain::{
    Commitment, ContentRequest, ContentRoot, ContentShape, ContentStatus, InlineContent,
};
use crate::walytis::{Block, BlockId, Entry};

pub(super) type Reply<T> = oneshot::Sender<Result<T, NetError>>;

pub(super) enum Command {
    Open {
        chain: BlockId,
        genesis: Option<Block>,
        reply: Reply<()>,
    },
    Append {
        chain: BlockId,
        items: Vec<(Vec<u8>, Vec<String>)>,
        time: u64,
        reply: Reply<Vec<Entry>>,
    },
    Publish {
        chain: BlockId,
        blocks: Vec<Vec<u8>>,
        inline: Vec<(usize, InlineContent)>,
        reply: Reply<()>,
    },
    Listen(Multiaddr, Reply<()>),
    Dial(Multiaddr, Reply<()>),
    UseRelay(Multiaddr, Reply<()>),
    AddExternal(Multiaddr),
    Peers(BlockId, Reply<Vec<PeerId>>),
    Unkept(Reply<Vec<ContentRoot>>),
    Synced(BlockId, Reply<bool>),
    FetchContent {
        chain: BlockId,
        commitment: Commitment,
        reply: Reply<ContentStatus>,
    },
    OfferContent {
        chain: BlockId,
        shape: ContentShape,
        reply: Reply<usize>,
    },
    OfferContentLater {
        chain: BlockId,
        shape: ContentShape,
        reply: Reply<()>,
    },
    EraseContent {
        request: ContentRequest,
        reply: Reply<usize>,
    },
    Reconnect,
    Offline,
    Stop(Reply<()>),
}

/// A cheap handle to a running node.
#[derive(Clone)]
pub struct NodeHandle {
    pub(super) commands: mpsc::UnboundedSender<Command>,
    pub(super) peer_id: PeerId,
    pub(super) streams: libp2p_stream::Control,
}

impl NodeHandle {
    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, NetError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .unbounded_send(make(tx))
            .map_err(|_| NetError::Stopped)?;
        rx.await.map_err(|_| NetError::Stopped)?
    }

    /// This node's peer ID.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// Opens and accepts raw streams on the node's connections, such as identity sessions
    /// ([`session::open_session`], [`session::accept_sessions`]).
    pub fn streams(&self) -> libp2p_stream::Control {
        self.streams.clone()
    }

    /// Starts syncing a chain: the store's copy, a new replica starting at `genesis`, or, with
    /// neither, a replica whose genesis the first peer of the chain is asked for.
    pub async fn open(&self, chain: BlockId, genesis: Option<Block>) -> Result<(), NetError> {
        self.call(|reply| Command::Open {
            chain,
            genesis,
            reply,
        })
        .await
    }

    /// Pushes blocks that another handle on the node's store already stored (signed by
    /// another key: an identity's device key) to the chain's peers.
    pub async fn publish(&self, chain: BlockId, blocks: Vec<Vec<u8>>) -> Result<(), NetError> {
        self.publish_with_content(chain, blocks, Vec::new()).await
    }

    /// [`NodeHandle::publish`], with content pushed inline: each `(index, content)` of
    /// `inline` is the content that block `blocks[index]` commits to (of at most
    /// [`crate::offchain::MAX_INLINE_LEN`] bytes), sent in that block's own gossip message, so
    /// that readers have it as soon as the block.
    pub async fn publish_with_content(
        &self,
        chain: BlockId,
        blocks: Vec<Vec<u8>>,
        inline: Vec<(usize, InlineContent)>,
    ) -> Result<(), NetError> {
        self.call(|reply| Command::Publish {
            chain,
            blocks,
            inline,
            reply,
        })
        .await
    }

    /// Appends blocks signed with the node's device key and pushes them to peers.
    pub async fn append(
        &self,
        chain: BlockId,
        time: u64,
        items: Vec<(Vec<u8>, Vec<String>)>,
    ) -> Result<Vec<Entry>, NetError> {
        self.call(|reply| Command::Append {
            chain,
            items,
            time,
            reply,
        })
        .await
    }

    /// Listens on an address; [`NodeEvent::Listening`] reports the bound address.
    pub async fn listen(&self, address: Multiaddr) -> Result<(), NetError> {
        self.call(|reply| Command::Listen(address, reply)).await
    }

    /// Dials an address.
    pub async fn dial(&self, address: Multiaddr) -> Result<(), NetError> {
        self.call(|reply| Command::Dial(address, reply)).await
    }

    /// Dials a relay (an address ending in `/p2p/<relay>`), listens on `/p2p-circuit` through
    /// it once connected, and registers and discovers the peers of every open chain there.
    /// Several addresses of one relay (WebRTC-Direct, WebSocket) are dialled together and
    /// the first to connect wins, so a failing transport falls back to the others.
    pub async fn use_relay(&self, address: Multiaddr) -> Result<(), NetError> {
        self.call(|reply| Command::UseRelay(address, reply)).await
    }

    /// The network is likely back (the browser's `online` event, a tab becoming visible):
    /// dial every lost relay now instead of at its next backoff step.
    pub fn reconnect(&self) {
        let _ = self.commands.unbounded_send(Command::Reconnect);
    }

    /// Stops the node: closes its connections and listeners; every later call on any of its
    /// handles fails with [`NetError::Stopped`]. Resolves once it has stopped.
    pub async fn stop(&self) -> Result<(), NetError> {
        self.call(Command::Stop).await
    }

    /// The device lost its network (the browser's `offline` event): closes the connections to
    /// the relays now, so that [`NodeEvent::Connection`] says so at once instead of after the
    /// pings time out; they are dialled again with backoff and at [`NodeHandle::reconnect`].
    pub fn offline(&self) {
        let _ = self.commands.unbounded_send(Command::Offline);
    }

    /// Declares an address others reach this node at (a relay needs one to serve circuits).
    pub fn add_external_address(&self, address: Multiaddr) {
        let _ = self.commands.unbounded_send(Command::AddExternal(address));
    }

    /// The peers currently syncing a chain with this node.
    pub async fn peers(&self, chain: BlockId) -> Result<Vec<PeerId>, NetError> {
        self.call(|reply| Command::Peers(chain, reply)).await
    }

    /// The contents this node offered (or is to offer) that no relay has said it keeps yet
    /// (see [`NodeHandle::offer_content`]): what a page shows as "sending", across reloads.
    pub async fn unkept_offers(&self) -> Result<Vec<ContentRoot>, NetError> {
        self.call(Command::Unkept).await
    }

    /// Whether a chain has caught up with its peers ([`NodeEvent::Synced`]); `false` while it
    /// is still being joined or is not open.
    pub async fn is_synced(&self, chain: BlockId) -> Result<bool, NetError> {
        self.call(|reply| Command::Synced(chain, reply)).await
    }

    /// Fetches the content `commitment` names (of a private block of `chain`) from the
    /// chain's peers into the store, resuming from the verified segments it holds: resolves
    /// once it is all here ([`ContentStatus::Available`]), however long that takes — peers
    /// are asked in rounds with backoff until one has it. [`NodeEvent::Content`] reports each
    /// verified piece. Fails for erased content, or when the store fails.
    pub async fn fetch_content(
        &self,
        chain: BlockId,
        commitment: Commitment,
    ) -> Result<ContentStatus, NetError> {
        self.call(|reply| Command::FetchContent {
            chain,
            commitment,
            reply,
        })
        .await
    }

    /// Offers a content this node holds (of a private block of `chain`) to the relays it
    /// uses: each relay with a mailbox that keeps the chain and has room fetches it from this
    /// node, verifying every segment, and then serves it to the chain's peers while this node
    /// is offline. Resolves with how many relays accepted. The offer is kept in the store
    /// and made again (relays connecting, a later node over the store) until a relay says
    /// it holds all of it: [`NodeEvent::ContentKept`](super::NodeEvent::ContentKept). Of the
    /// content, the relays learn its root and size (and which chain, and who offered it):
    /// never a key or a plaintext.
    pub async fn offer_content(
        &self,
        chain: BlockId,
        shape: ContentShape,
    ) -> Result<usize, NetError> {
        self.call(|reply| Command::OfferContent {
            chain,
            shape,
            reply,
        })
        .await
    }

    /// [`NodeHandle::offer_content`] a second from now, for a content that went to the
    /// relays with its block already (`Publication::inline` in the client layer):
    /// the offer is for a relay that missed that push, and must not race it. Resolves once
    /// the offer is kept in the store, so that a node stopped before it is made (a page
    /// closed right after a post) loses nothing: the next node over the store makes it when
    /// it reaches a relay.
    pub async fn offer_content_later(
        &self,
        chain: BlockId,
        shape: ContentShape,
    ) -> Result<(), NetError> {
        self.call(|reply| Command::OfferContentLater {
            chain,
            shape,
            reply,
        })
        .await
    }

    /// Asks the relays this node uses to erase a content of `chain` for good, showing its
    /// erase secret ([`crate::offchain::erase_secret`], which only a member can derive): a
    /// relay that holds the content's tree checks the secret against it and drops every
    /// byte. Resolves with how many relays erased it.
    pub async fn erase_content(
        &self,
        chain: BlockId,
        root: ContentRoot,
        secret: [u8; 32],
    ) -> Result<usize, NetError> {
        self.call(|reply| Command::EraseContent {
            request: ContentRequest::Erase(chain, root, secret),
            reply,
        })
        .await
    }
}
