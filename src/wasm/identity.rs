//! Identities for JavaScript: a thin shell over [`crate::identity::Identity`]; blocks it
//! writes are pushed to peers through the page's node.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use futures_util::lock::Mutex;
use js_sys::{Array, Object, Uint8Array};
use rand_core::OsRng;
use wasm_bindgen::prelude::*;

use super::node::WasmNode;
use super::{
    byte_array, error, hex, invalid, now, parse_id, promise, set, string_array, strings, AnyStore,
    JsFailure, WasmStore,
};
use crate::identity::{
    BoundChain, DeviceEntry, DeviceKeys, Founding, Identity, IdentityError, Invitation, KdfFloor,
    KdfParams, KeystoreError, Kind, MemberEntry, Policy, Role,
};
use crate::net::NodeHandle;
use crate::store::BlockStore;
use crate::walytis::{BlockId, Chain, RuleRefusal};

/// Setting under which a store keeps this device's identity keys, sealed under the user's
/// passphrase (Argon2id + XChaCha20-Poly1305); the store never holds them in the clear.
const DEVICE_KEYS: &str = "identity-device-keys";

fn identity_code(e: &IdentityError) -> &'static str {
    match e {
        IdentityError::Malformed(_) | IdentityError::NotAnIdentity(_) => "IDENTITY_INVALID",
        IdentityError::InvalidInvitation(_) => "INVITATION_INVALID",
        IdentityError::InvalidDid(_) => "INVALID_ARGUMENT",
        IdentityError::NotAMember => "NOT_A_MEMBER",
        IdentityError::NotBound(_) => "NOT_BOUND",
        IdentityError::NoEpochKey => "NO_KEY",
        IdentityError::EpochDiscarded => "EPOCH_DISCARDED",
        IdentityError::Rejected(why) => why.code(),
        IdentityError::Keystore(KeystoreError::WrongPassphrase) => "WRONG_PASSPHRASE",
        IdentityError::Keystore(_) => "KEYSTORE_INVALID",
        IdentityError::Key(_) => "KEY_INVALID",
        IdentityError::Chain(e) => super::chain_code(e),
    }
}

impl From<IdentityError> for JsFailure {
    fn from(e: IdentityError) -> Self {
        JsFailure(error(identity_code(&e), e))
    }
}

impl AnyStore {
    /// This device's identity keys: opened with the passphrase, or made and sealed with it.
    async fn device_keys(&self, passphrase: &str) -> Result<DeviceKeys, JsFailure> {
        if passphrase.is_empty() {
            return Err(invalid("a passphrase is required to keep identity keys"));
        }
        match self.setting(DEVICE_KEYS).await? {
            Some(sealed) => Ok(DeviceKeys::open(
                passphrase,
                &sealed,
                KdfFloor::RECOMMENDED,
            )?),
            None => {
                let keys = DeviceKeys::generate(&mut OsRng);
                let sealed = keys.seal(passphrase, KdfParams::DEFAULT, &mut OsRng)?;
                self.put_setting(DEVICE_KEYS, &sealed).await?;
                Ok(keys)
            }
        }
    }
}

/// An identity (person or group) as this device sees it.
#[wasm_bindgen]
pub struct WasmIdentity {
    inner: Rc<Mutex<Identity<AnyStore>>>,
    node: NodeHandle,
    chain: BlockId,
    /// The bound chains opened from this object, acknowledged before a removal.
    bound: BoundChains,
}

/// Bound chains opened from one identity object, held weakly: closing one drops it.
type BoundChains = Rc<RefCell<Vec<Weak<Mutex<BoundChain<AnyStore>>>>>>;

impl WasmIdentity {
    async fn attach(
        identity: Identity<AnyStore>,
        node: &WasmNode,
    ) -> Result<WasmIdentity, JsFailure> {
        let chain = identity.chain().id();
        node.handle.open(chain, None).await?;
        Ok(WasmIdentity {
            inner: Rc::new(Mutex::new(identity)),
            node: node.handle.clone(),
            chain,
            bound: Rc::default(),
        })
    }
}

/// Before a write: picks up blocks that arrived, returns the chain's length.
async fn begin(identity: &mut Identity<AnyStore>) -> Result<u64, JsFailure> {
    identity.refresh().await?;
    Ok(identity.chain().len())
}

/// After a write: pushes the blocks appended since `before` to the chain's peers.
async fn publish(
    identity: &Identity<AnyStore>,
    node: &NodeHandle,
    before: u64,
) -> Result<(), JsFailure> {
    let chain = identity.chain();
    // Sequence numbers start at 0 for the genesis: the new blocks are those from `before`.
    let fresh = chain
        .since(before.checked_sub(1), usize::MAX)
        .await
        .map_err(IdentityError::from)?;
    let blocks = fresh.iter().map(|e| e.block.bytes().to_vec()).collect();
    node.publish(chain.id(), blocks).await?;
    Ok(())
}

fn device_object(device: &DeviceEntry, member: &str, current: bool) -> JsValue {
    let object = Object::new();
    set(&object, "did", device.did.clone());
    set(&object, "member", member.to_owned());
    set(&object, "current", current);
    object.into()
}

#[wasm_bindgen]
impl WasmIdentity {
    /// Creates a person identity (kind `"person"`) whose first device is this one, or a group
    /// (kind `"group"`) founded by `person` (an identity this device belongs to).
    pub async fn create(
        store: &WasmStore,
        node: &WasmNode,
        name: String,
        passphrase: String,
        relays: JsValue,
    ) -> Result<WasmIdentity, JsValue> {
        Self::found(store, node, name, passphrase, relays, None).await
    }

    /// Creates a group founded by `person` (an identity of this device).
    #[wasm_bindgen(js_name = createGroup)]
    pub async fn create_group(
        store: &WasmStore,
        node: &WasmNode,
        name: String,
        passphrase: String,
        relays: JsValue,
        person: &WasmIdentity,
    ) -> Result<WasmIdentity, JsValue> {
        let founder = member_entry(&*person.inner.lock().await);
        Self::found(store, node, name, passphrase, relays, Some(founder)).await
    }

    async fn found(
        store: &WasmStore,
        node: &WasmNode,
        name: String,
        passphrase: String,
        relays: JsValue,
        founder: Option<MemberEntry>,
    ) -> Result<WasmIdentity, JsValue> {
        let relays = string_array(&relays, "relays")?;
        let keys = store.store.device_keys(&passphrase).await?;
        let kind = if founder.is_some() {
            Kind::Group
        } else {
            Kind::Person
        };
        let identity = Identity::create(
            store.store.clone(),
            keys,
            Founding {
                kind,
                name,
                relays,
                founder,
            },
            now(),
            &mut OsRng,
        )
        .await
        .map_err(JsFailure::from)?;
        Ok(Self::attach(identity, node).await?)
    }

    /// Opens an identity whose chain the store holds (this device's own, or one it joined or
    /// is joining).
    pub async fn open(
        store: &WasmStore,
        node: &WasmNode,
        chain: String,
        passphrase: String,
    ) -> Result<WasmIdentity, JsValue> {
        let chain = parse_id(&chain)?;
        let keys = store.store.device_keys(&passphrase).await?;
        let identity = Identity::open(store.store.clone(), chain, keys)
            .await
            .map_err(JsFailure::from)?;
        Ok(Self::attach(identity, node).await?)
    }

    /// The chain ID of a `did:endra:<chain-id>` DID.
    #[wasm_bindgen(js_name = chainOfDid)]
    pub fn chain_of_did(did: String) -> Result<String, JsValue> {
        let chain = crate::identity::parse_identity_did(&did).map_err(JsFailure::from)?;
        Ok(chain.to_string())
    }

    /// The DID document (a JSON string) of an identity whose chain the store holds, derived
    /// from the chain alone: no keys, no membership needed.
    #[wasm_bindgen(js_name = resolveDocument)]
    pub async fn resolve_document(store: &WasmStore, chain: String) -> Result<String, JsValue> {
        let chain = Chain::open(
            store.store.clone(),
            &crate::identity::rules(),
            parse_id(&chain)?,
        )
        .await
        .map_err(JsFailure::from)?;
        let state = crate::identity::handle::resolve(&chain)
            .await
            .map_err(JsFailure::from)?;
        Ok(crate::identity::document(&state).to_string())
    }

    /// Reads an invitation code: `{ chain, relays, expires, role }`.
    #[wasm_bindgen(js_name = parseInvitation)]
    pub fn parse_invitation(code: String) -> Result<JsValue, JsValue> {
        let invitation = Invitation::from_code(&code).map_err(JsFailure::from)?;
        let object = Object::new();
        set(&object, "chain", invitation.chain.to_string());
        set(&object, "relays", strings(&invitation.relays));
        set(&object, "expires", invitation.expires as f64);
        set(
            &object,
            "role",
            match invitation.role {
                Role::Admin => "admin",
                Role::Member => "member",
            },
        );
        Ok(object.into())
    }

    /// `did:endra:<chain-id>`.
    #[wasm_bindgen(getter)]
    pub fn did(&self) -> String {
        crate::identity::identity_did(&self.chain)
    }

    /// The chain ID.
    #[wasm_bindgen(getter)]
    pub fn chain(&self) -> String {
        self.chain.to_string()
    }

    /// Re-reads the chain; resolves to the number of membership changes so far.
    pub fn refresh(&self) -> js_sys::Promise {
        let inner = self.inner.clone();
        promise(async move {
            let mut identity = inner.lock().await;
            identity.refresh().await?;
            Ok((identity.state().changes().len() as f64).into())
        })
    }

    /// A summary: `{ did, device, kind, name, current, pending: [{ request, member }],
    /// changes }`.
    pub fn summary(&self) -> js_sys::Promise {
        let inner = self.inner.clone();
        promise(async move {
            let identity = inner.lock().await;
            let state = identity.state();
            let object = Object::new();
            set(&object, "did", state.did());
            set(&object, "device", identity.device().did().to_owned());
            set(
                &object,
                "kind",
                match state.kind() {
                    Kind::Person => "person",
                    Kind::Group => "group",
                },
            );
            set(&object, "name", state.name().to_owned());
            set(&object, "current", identity.is_current_device());
            set(
                &object,
                "removed",
                state.is_removed_device(identity.device().did()),
            );
            let pending: Array = state
                .pending_requests()
                .map(|r| {
                    let p = Object::new();
                    set(&p, "request", r.block.to_string());
                    set(&p, "member", r.member.did.clone());
                    set(
                        &p,
                        "devices",
                        strings(r.member.devices.iter().map(|d| &d.did)),
                    );
                    JsValue::from(p)
                })
                .collect();
            set(&object, "pending", pending);
            set(&object, "changes", state.changes().len() as f64);
            set(&object, "blocks", state.block_count() as f64);
            let policy = Object::new();
            let number = |value: Option<f64>| value.map_or(JsValue::NULL, JsValue::from);
            set(
                &policy,
                "rekeyEvery",
                number(state.policy().rekey_every.map(|ms| ms as f64)),
            );
            set(
                &policy,
                "keepEpochs",
                number(state.policy().keep_epochs.map(f64::from)),
            );
            set(&object, "policy", policy);
            Ok(object.into())
        })
    }

    /// The W3C DID document as a JSON string.
    pub fn document(&self) -> js_sys::Promise {
        let inner = self.inner.clone();
        promise(async move {
            let identity = inner.lock().await;
            Ok(identity.document().to_string().into())
        })
    }

    /// Current devices `[{ did, member, current }]` (`current`: this device).
    pub fn devices(&self) -> js_sys::Promise {
        let inner = self.inner.clone();
        promise(async move {
            let identity = inner.lock().await;
            let me = identity.device().did().to_owned();
            let list: Array = identity
                .state()
                .devices()
                .map(|(m, d)| device_object(d, &m.did, d.did == me))
                .collect();
            Ok(list.into())
        })
    }

    /// Current members `[{ did, role, devices }]`.
    pub fn members(&self) -> js_sys::Promise {
        let inner = self.inner.clone();
        promise(async move {
            let identity = inner.lock().await;
            let list: Array = identity
                .state()
                .members()
                .values()
                .map(|m| {
                    let o = Object::new();
                    set(&o, "did", m.did.clone());
                    set(
                        &o,
                        "role",
                        match m.role {
                            Role::Admin => "admin",
                            Role::Member => "member",
                        },
                    );
                    set(&o, "devices", strings(m.devices.iter().map(|d| &d.did)));
                    JsValue::from(o)
                })
                .collect();
            Ok(list.into())
        })
    }

    /// A one-time invitation code valid for `expires_in` ms (`role`: "admin" | "member").
    pub fn invite(&self, role: String, expires_in: f64) -> js_sys::Promise {
        let inner = self.inner.clone();
        promise(async move {
            let role = parse_role(&role)?;
            let identity = inner.lock().await;
            let expires = now().saturating_add(expires_in.max(0.0) as u64);
            let invitation = identity.invite(role, expires, &mut OsRng)?;
            let object = Object::new();
            set(&object, "code", invitation.to_code());
            set(&object, "expires", expires as f64);
            Ok(object.into())
        })
    }

    /// Writes a join request with an invitation code, for this device.
    #[wasm_bindgen(js_name = requestJoin)]
    pub fn request_join(&self, code: String) -> js_sys::Promise {
        self.request(code, None)
    }

    /// Writes a join request with an invitation code to a group, as `person` with its devices.
    #[wasm_bindgen(js_name = requestJoinAs)]
    pub fn request_join_as(&self, code: String, person: &WasmIdentity) -> js_sys::Promise {
        self.request(code, Some(person.inner.clone()))
    }

    fn request(
        &self,
        code: String,
        person: Option<Rc<Mutex<Identity<AnyStore>>>>,
    ) -> js_sys::Promise {
        let (inner, node) = (self.inner.clone(), self.node.clone());
        promise(async move {
            let invitation = Invitation::from_code(&code)?;
            let member = match person {
                Some(person) => Some(member_entry(&*person.lock().await)),
                None => None,
            };
            let mut identity = inner.lock().await;
            let before = begin(&mut identity).await?;
            let request = identity.request_join(invitation, member, now()).await?;
            publish(&identity, &node, before).await?;
            Ok(request.to_string().into())
        })
    }

    /// Approves a pending join request.
    pub fn approve(&self, request: String) -> js_sys::Promise {
        let (inner, node) = (self.inner.clone(), self.node.clone());
        promise(async move {
            let request = parse_id(&request)?;
            let mut identity = inner.lock().await;
            let before = begin(&mut identity).await?;
            identity.approve(request, now(), &mut OsRng).await?;
            publish(&identity, &node, before).await?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Removes a member (a device of a person, a person of a group) and rekeys. The bound
    /// chains opened from this object are acknowledged first, so that the removed member's
    /// messages this device holds stay shown.
    pub fn remove(&self, member: String) -> js_sys::Promise {
        let (inner, node) = (self.inner.clone(), self.node.clone());
        let bound: Vec<_> = self
            .bound
            .borrow()
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        promise(async move {
            let mut identity = inner.lock().await;
            for chain in bound {
                let mut chain = chain.lock().await;
                refresh_both(&mut chain, &mut identity).await?;
                if let Some(ack) = chain.acknowledge(&identity, now()).await? {
                    node.publish(chain.chain().id(), vec![ack.block.bytes().to_vec()])
                        .await?;
                }
            }
            let before = begin(&mut identity).await?;
            identity.remove(&member, now(), &mut OsRng).await?;
            publish(&identity, &node, before).await?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Leaves (removes this device's member).
    pub fn leave(&self) -> js_sys::Promise {
        let (inner, node) = (self.inner.clone(), self.node.clone());
        promise(async move {
            let mut identity = inner.lock().await;
            let before = begin(&mut identity).await?;
            identity.leave(now()).await?;
            publish(&identity, &node, before).await?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Rotates this device's keys.
    pub fn rotate(&self) -> js_sys::Promise {
        let (inner, node) = (self.inner.clone(), self.node.clone());
        promise(async move {
            let mut identity = inner.lock().await;
            let before = begin(&mut identity).await?;
            identity.rotate(now(), &mut OsRng).await?;
            publish(&identity, &node, before).await?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Sets the policy for epoch keys: `rekey_every` ms between scheduled epochs and
    /// `keep_epochs` epochs kept readable (`undefined`: no schedule, keep all).
    #[wasm_bindgen(js_name = setPolicy)]
    pub fn set_policy(
        &self,
        rekey_every: Option<f64>,
        keep_epochs: Option<f64>,
    ) -> js_sys::Promise {
        let (inner, node) = (self.inner.clone(), self.node.clone());
        promise(async move {
            let whole = |value: f64, what: &str, max: f64| {
                if value.fract() == 0.0 && (1.0..=max).contains(&value) {
                    Ok(value)
                } else {
                    Err(invalid(format_args!(
                        "{what} must be a whole number from 1 to {max}"
                    )))
                }
            };
            let policy = Policy {
                rekey_every: rekey_every
                    .map(|ms| whole(ms, "rekeyEvery", 2f64.powi(53)).map(|ms| ms as u64))
                    .transpose()?,
                keep_epochs: keep_epochs
                    .map(|n| whole(n, "keepEpochs", f64::from(u32::MAX)).map(|n| n as u32))
                    .transpose()?,
            };
            let mut identity = inner.lock().await;
            let before = begin(&mut identity).await?;
            identity.set_policy(policy, now()).await?;
            publish(&identity, &node, before).await?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Makes a new epoch if one is due (someone left, a device lacks the key).
    #[wasm_bindgen(js_name = rekeyIfDue)]
    pub fn rekey_if_due(&self) -> js_sys::Promise {
        let (inner, node) = (self.inner.clone(), self.node.clone());
        promise(async move {
            let mut identity = inner.lock().await;
            let before = begin(&mut identity).await?;
            let every = identity.state().policy().rekey_every;
            let done = identity.rekey_if_due(now(), every, &mut OsRng).await?;
            publish(&identity, &node, before).await?;
            Ok(done.into())
        })
    }

    /// Writes an encrypted message under the current epoch; resolves to its block ID.
    pub fn write(&self, body: JsValue, topics: JsValue) -> js_sys::Promise {
        let (inner, node) = (self.inner.clone(), self.node.clone());
        promise(async move {
            let body = byte_array(&body, "body")?;
            let topics = string_array(&topics, "topics")?;
            let mut identity = inner.lock().await;
            let before = begin(&mut identity).await?;
            let id = identity.write(&body, topics, now(), &mut OsRng).await?;
            publish(&identity, &node, before).await?;
            Ok(id.to_string().into())
        })
    }

    /// Accepted messages in chain order: `[{ id, author, time, body | error }]`.
    pub fn messages(&self) -> js_sys::Promise {
        let inner = self.inner.clone();
        promise(async move {
            let identity = inner.lock().await;
            let blocks = identity.data_blocks().await?;
            let list: Array = blocks
                .iter()
                .map(|block| message_object(&identity, block, identity.read(block)))
                .collect();
            Ok(list.into())
        })
    }

    /// Founds a chain bound to this identity (see [`BoundChain`]) and syncs it.
    #[wasm_bindgen(js_name = createChain)]
    pub fn create_chain(&self) -> js_sys::Promise {
        let (inner, node) = (self.inner.clone(), self.node.clone());
        let registry = self.bound.clone();
        promise(async move {
            let bound = {
                let mut identity = inner.lock().await;
                identity.refresh().await?;
                BoundChain::create(&identity, now(), &mut OsRng).await?
            };
            Ok(WasmBoundChain::attach(bound, inner, node, &registry)
                .await?
                .into())
        })
    }

    /// Opens a chain bound to this identity that the store holds, and syncs it. Fails with
    /// `NOT_BOUND` for a chain of another identity, `NOT_PERMITTED` if its founder was not a
    /// device of this one.
    #[wasm_bindgen(js_name = openChain)]
    pub fn open_chain(&self, chain: String) -> js_sys::Promise {
        let (inner, node) = (self.inner.clone(), self.node.clone());
        let registry = self.bound.clone();
        promise(async move {
            let chain = parse_id(&chain)?;
            let bound = {
                let mut identity = inner.lock().await;
                identity.refresh().await?;
                BoundChain::open(&identity, chain).await?
            };
            Ok(WasmBoundChain::attach(bound, inner, node, &registry)
                .await?
                .into())
        })
    }
}

/// `{ id, author, device?, time, body | error }` for a message block.
fn message_object(
    identity: &Identity<AnyStore>,
    block: &crate::walytis::Block,
    content: Result<Vec<u8>, IdentityError>,
) -> JsValue {
    let o = Object::new();
    set(&o, "id", block.id().to_string());
    set(&o, "author", hex(block.author().key_bytes()));
    if let Some((_, device)) = identity.state().signer(block.author().key_bytes()) {
        set(&o, "device", device.to_owned());
    }
    set(&o, "time", block.time() as f64);
    match content {
        Ok(body) => set(&o, "body", Uint8Array::from(&body[..])),
        Err(e) => set(&o, "error", e.to_string()),
    }
    o.into()
}

/// A chain bound to an identity (see [`BoundChain`]): written and read by the identity's
/// current devices only.
#[wasm_bindgen]
pub struct WasmBoundChain {
    inner: Rc<Mutex<BoundChain<AnyStore>>>,
    identity: Rc<Mutex<Identity<AnyStore>>>,
    node: NodeHandle,
    chain: BlockId,
}

impl WasmBoundChain {
    /// Syncs `bound` through the node, wraps it, and adds it to `registry` (the identity
    /// object's bound chains).
    async fn attach(
        bound: BoundChain<AnyStore>,
        identity: Rc<Mutex<Identity<AnyStore>>>,
        node: NodeHandle,
        registry: &BoundChains,
    ) -> Result<Self, JsFailure> {
        let chain = bound.chain().id();
        node.open(chain, None).await?;
        let inner = Rc::new(Mutex::new(bound));
        let mut chains = registry.borrow_mut();
        chains.retain(|weak| weak.strong_count() > 0);
        chains.push(Rc::downgrade(&inner));
        Ok(WasmBoundChain {
            inner,
            identity,
            node,
            chain,
        })
    }
}

#[wasm_bindgen]
impl WasmBoundChain {
    /// The chain ID.
    #[wasm_bindgen(getter)]
    pub fn chain(&self) -> String {
        self.chain.to_string()
    }

    /// Writes a message sealed under the identity's current epoch (rekeying first if due);
    /// resolves to its block ID.
    pub fn write(&self, body: JsValue, topics: JsValue) -> js_sys::Promise {
        let (inner, identity, node) =
            (self.inner.clone(), self.identity.clone(), self.node.clone());
        promise(async move {
            let body = byte_array(&body, "body")?;
            let topics = string_array(&topics, "topics")?;
            let mut identity = identity.lock().await;
            let mut bound = inner.lock().await;
            let before = refresh_both(&mut bound, &mut identity).await?;
            let entry = bound
                .write(&mut identity, &body, topics, now(), &mut OsRng)
                .await?;
            // A rekey first, so that peers hold the anchor before the block that names it.
            publish(&identity, &node, before).await?;
            node.publish(bound.chain().id(), vec![entry.block.bytes().to_vec()])
                .await?;
            Ok(entry.block.id().to_string().into())
        })
    }

    /// Messages in chain order: `[{ id, author, device?, time, body | error }]`.
    pub fn messages(&self) -> js_sys::Promise {
        let (inner, identity) = (self.inner.clone(), self.identity.clone());
        promise(async move {
            let mut identity = identity.lock().await;
            let mut bound = inner.lock().await;
            refresh_both(&mut bound, &mut identity).await?;
            let list: Array = bound
                .messages(&identity)
                .await?
                .into_iter()
                .map(|(block, content)| message_object(&identity, &block, content))
                .collect();
            Ok(list.into())
        })
    }
}

/// Reads what other handles stored into `bound` and then `identity`, in that order: every
/// block the bound chain holds has its anchor stored, so the identity read after it holds
/// everything those blocks name (a write never anchors behind a parent, and every message's
/// epoch is known). Returns the identity chain's length, for [`publish`].
async fn refresh_both(
    bound: &mut BoundChain<AnyStore>,
    identity: &mut Identity<AnyStore>,
) -> Result<u64, JsFailure> {
    bound
        .chain_mut()
        .refresh()
        .await
        .map_err(IdentityError::from)?;
    begin(identity).await
}

fn parse_role(role: &str) -> Result<Role, JsFailure> {
    match role {
        "admin" => Ok(Role::Admin),
        "member" => Ok(Role::Member),
        other => Err(invalid(format_args!("unknown role {other:?}"))),
    }
}

/// A person identity as a group member: its DID and current devices.
fn member_entry(person: &Identity<AnyStore>) -> MemberEntry {
    MemberEntry {
        did: person.did(),
        devices: person.state().devices().map(|(_, d)| d.clone()).collect(),
    }
}
