//! The network node for JavaScript: a thin shell over [`crate::net::Node`].

use futures::StreamExt;
use js_sys::{Array, Function, Object, Reflect};
use libp2p::{identity, Multiaddr};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::spawn_local;

use super::{
    block_object, byte_array, invalid, parse_id, promise, set, string_array, strings, JsFailure,
    WasmStore,
};
use crate::net::{browser_swarm, NetError, Node, NodeConfig, NodeEvent, NodeHandle};
use crate::offchain::store::root_hex;
use crate::offchain::{ContentStatus, TransferError};

fn net_code(e: &NetError) -> &'static str {
    match e {
        NetError::Chain(e) => super::chain_code(e),
        NetError::UnknownChain(_) => "NOT_FOUND",
        NetError::Setup(_) => "NETWORK_SETUP",
        NetError::Unreachable { .. } => "UNREACHABLE",
        NetError::Stopped => "NETWORK_STOPPED",
        NetError::NoDeviceKey => "NO_KEY",
        NetError::Content(TransferError::Store(e)) => super::store_code(e),
        NetError::Content(TransferError::Erased) => "CONTENT_UNAVAILABLE",
        NetError::Content(_) => "CONTENT_INVALID",
        NetError::ContentQuota { .. } => "CONTENT_QUOTA_EXCEEDED",
    }
}

impl From<NetError> for JsFailure {
    fn from(e: NetError) -> Self {
        JsFailure(super::error(net_code(&e), e))
    }
}

fn event_object(event: &NodeEvent) -> JsValue {
    let object = Object::new();
    match event {
        NodeEvent::Listening(address) => {
            set(&object, "type", "listening");
            set(&object, "address", address.to_string());
        }
        NodeEvent::Changed {
            chain,
            count,
            blocks,
        } => {
            set(&object, "type", "changed");
            set(&object, "chain", chain.to_string());
            set(&object, "count", *count as f64);
            if let Some(blocks) = blocks {
                set(
                    &object,
                    "blocks",
                    blocks.iter().map(block_object).collect::<Array>(),
                );
            }
        }
        NodeEvent::Connection { peer, connected } => {
            set(&object, "type", "connection");
            set(&object, "peer", peer.to_string());
            set(&object, "connected", *connected);
        }
        NodeEvent::Synced { chain } => {
            set(&object, "type", "synced");
            set(&object, "chain", chain.to_string());
        }
        NodeEvent::ChainPeer {
            chain,
            peer,
            joined,
        } => {
            set(&object, "type", "peer");
            set(&object, "chain", chain.to_string());
            set(&object, "peer", peer.to_string());
            set(&object, "joined", *joined);
        }
        NodeEvent::Content {
            chain,
            root,
            status,
        } => {
            set(&object, "type", "content");
            set(&object, "chain", chain.to_string());
            set(&object, "root", root_hex(root));
            let (name, done, total) = match status {
                ContentStatus::Available => ("available", None, None),
                ContentStatus::Fetching { done, total } => ("fetching", Some(*done), Some(*total)),
                ContentStatus::Missing => ("missing", None, None),
                ContentStatus::Erased => ("erased", None, None),
            };
            set(&object, "status", name);
            if let (Some(done), Some(total)) = (done, total) {
                set(&object, "done", done as f64);
                set(&object, "total", total as f64);
            }
        }
        NodeEvent::ContentFetched { chain, root, bytes } => {
            set(&object, "type", "fetched");
            set(&object, "chain", chain.to_string());
            set(&object, "root", root_hex(root));
            set(&object, "bytes", *bytes as f64);
        }
        NodeEvent::ContentKept { chain, root, relay } => {
            set(&object, "type", "kept");
            set(&object, "chain", chain.to_string());
            set(&object, "root", root_hex(root));
            set(&object, "relay", relay.to_string());
        }
    }
    object.into()
}

/// A libp2p node in the page, syncing chains of one store with peers through relays.
#[wasm_bindgen]
pub struct WasmNode {
    pub(super) handle: NodeHandle,
}

#[wasm_bindgen]
impl WasmNode {
    /// Starts a node over `store`; `on_event` receives `{ type, … }` objects.
    /// `content_store_bytes`: the quota of the store's offchain content (see
    /// [`crate::net::Limits::content_store_bytes`]), the default if `undefined`.
    pub async fn start(
        store: &WasmStore,
        on_event: Function,
        content_store_bytes: Option<f64>,
    ) -> Result<WasmNode, JsValue> {
        // A fresh network identity per page: two tabs of one profile never share a peer ID.
        // What identifies the device to its chains is its signing key, not its peer ID.
        let key = identity::Keypair::generate_ed25519();
        let device = store.store.device_key().await?;
        let mut config = NodeConfig::default();
        if let Some(bytes) = content_store_bytes {
            if !(bytes.is_finite() && bytes >= 0.0 && bytes.fract() == 0.0) {
                return Err(
                    invalid("maxStoredContentBytes must be a whole number of bytes").into(),
                );
            }
            config.limits.content_store_bytes = bytes as u64;
        }
        let swarm = browser_swarm(key, &config).map_err(JsFailure::from)?;
        let (node, handle, mut events) =
            Node::new(swarm, store.store.clone(), crate::identity::rules(), config);
        let node = node.with_device_key(device);
        spawn_local(node.run());
        spawn_local(async move {
            while let Some(event) = events.next().await {
                // A throwing listener must not stop the event pump.
                let _ = on_event.call1(&JsValue::NULL, &event_object(&event));
            }
        });
        Ok(WasmNode { handle })
    }

    /// This node's peer ID.
    #[wasm_bindgen(getter, js_name = peerId)]
    pub fn peer_id(&self) -> String {
        self.handle.peer_id().to_string()
    }

    /// Dials a multiaddr (a relay's `/ws/p2p/…` address).
    pub fn dial(&self, address: String) -> js_sys::Promise {
        let handle = self.handle.clone();
        promise(async move {
            let address = parse_multiaddr(&address)?;
            handle.dial(address).await?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Uses a relay (a `/ws/p2p/…` or `/webrtc-direct/certhash/…/p2p/…` address): dials it,
    /// listens on `/p2p-circuit` through it and finds the peers of open chains there.
    #[wasm_bindgen(js_name = useRelay)]
    pub fn use_relay(&self, address: String) -> js_sys::Promise {
        let handle = self.handle.clone();
        promise(async move {
            let address = parse_multiaddr(&address)?;
            handle.use_relay(address).await?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// The network is likely back: dials every lost relay now.
    pub fn reconnect(&self) {
        self.handle.reconnect();
    }

    /// Stops the node: closes its connections; later calls fail with `NETWORK_STOPPED`.
    pub fn stop(&self) -> js_sys::Promise {
        let handle = self.handle.clone();
        promise(async move {
            handle.stop().await?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// The browser went offline: closes the relay connections now.
    pub fn offline(&self) {
        self.handle.offline();
    }

    /// Starts syncing a chain: the store's copy, or joins it by ID.
    pub fn open(&self, chain: String) -> js_sys::Promise {
        let handle = self.handle.clone();
        promise(async move {
            handle.open(parse_id(&chain)?, None).await?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Appends blocks `[{ body, topics }]` to a synced chain and pushes them to its peers.
    pub fn append(&self, chain: String, items: Array) -> js_sys::Promise {
        let handle = self.handle.clone();
        promise(async move {
            let chain = parse_id(&chain)?;
            let mut drafts = Vec::with_capacity(items.length() as usize);
            for item in items.iter() {
                let body = byte_array(&Reflect::get(&item, &"body".into())?, "body")?;
                let topics = string_array(&Reflect::get(&item, &"topics".into())?, "topics")?;
                drafts.push((body, topics));
            }
            let entries = handle.append(chain, super::now(), drafts).await?;
            Ok(entries.iter().map(block_object).collect::<Array>().into())
        })
    }

    /// Whether a chain has caught up with its peers.
    #[wasm_bindgen(js_name = isSynced)]
    pub fn is_synced(&self, chain: String) -> js_sys::Promise {
        let handle = self.handle.clone();
        promise(async move { Ok(handle.is_synced(parse_id(&chain)?).await?.into()) })
    }

    /// Peer IDs currently syncing a chain with this node.
    pub fn peers(&self, chain: String) -> js_sys::Promise {
        let handle = self.handle.clone();
        promise(async move {
            let peers = handle.peers(parse_id(&chain)?).await?;
            Ok(strings(peers).into())
        })
    }
}

fn parse_multiaddr(text: &str) -> Result<Multiaddr, JsFailure> {
    text.parse()
        .map_err(|e| invalid(format_args!("{text:?} is not a multiaddr: {e}")))
}
