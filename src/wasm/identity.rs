//! Identities for JavaScript: a thin shell over [`crate::identity::Identity`]; blocks it
//! writes are pushed to peers through the page's node.

use std::rc::Rc;

use futures_util::lock::Mutex;
use js_sys::{Array, Object, Uint8Array};
use rand_core::OsRng;
use wasm_bindgen::prelude::*;
use zeroize::Zeroizing;

use super::node::WasmNode;
use super::{
    byte_array, error, hex, invalid, now, parse_id, promise, set, string_array, strings, AnyStore,
    JsFailure, WasmStore,
};
use crate::client::{Account, ClientError, Keyring, Message};
use crate::envelope::{ContentKind, Envelope, EnvelopeError};
use crate::identity::{
    DeviceEntry, Founding, IdentityError, Invitation, KeystoreError, Kind, MemberEntry,
    PersonAnchor, Policy, RecoveryKey, Role,
};
use crate::mutability::MutabilityError;
use crate::net::NodeHandle;
use crate::offchain::{OffchainError, TransferError};
use crate::walytis::{BlockId, Chain, RuleRefusal};

fn identity_code(e: &IdentityError) -> &'static str {
    match e {
        IdentityError::Malformed(_) | IdentityError::NotAnIdentity(_) => "IDENTITY_INVALID",
        IdentityError::InvalidInvitation(_) => "INVITATION_INVALID",
        IdentityError::InvalidDid(_) => "INVALID_ARGUMENT",
        IdentityError::InvalidRecoveryKey(_) => "RECOVERY_KEY_INVALID",
        IdentityError::NotAMember => "NOT_A_MEMBER",
        IdentityError::NotBound(_) => "NOT_BOUND",
        IdentityError::NoEpochKey => "NO_KEY",
        IdentityError::EpochDiscarded => "EPOCH_DISCARDED",
        IdentityError::ForgedEpochKey => "EPOCH_KEY_FORGED",
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

impl From<ClientError> for JsFailure {
    fn from(e: ClientError) -> Self {
        let code = match &e {
            ClientError::PassphraseRequired => "INVALID_ARGUMENT",
            ClientError::ChainNotOpen(_) | ClientError::NoDefaultChain => "NOT_FOUND",
            ClientError::Envelope(EnvelopeError::UnsupportedVersion(_)) => "UNSUPPORTED_CONTENT",
            ClientError::Envelope(_) => "MALFORMED_CONTENT",
            ClientError::Identity(e) => identity_code(e),
            ClientError::Store(e) => super::store_code(e),
            ClientError::KeysNotStored => "NOT_A_MEMBER",
            ClientError::NoSuchRecord(_) => "NOT_FOUND",
            ClientError::RecordDeleted(_) => "RECORD_DELETED",
            ClientError::NotTheAuthor(_) => "NOT_THE_AUTHOR",
            ClientError::NotPermitted(_) => "NOT_PERMITTED",
            ClientError::ContentUnavailable(_) => "CONTENT_UNAVAILABLE",
            ClientError::Content(OffchainError::TooLarge { .. }) => "CONTENT_TOO_LARGE",
            ClientError::Content(_) => "CONTENT_INVALID",
            ClientError::Transfer(TransferError::Store(e))
            | ClientError::Mutability(MutabilityError::Store(e)) => super::store_code(e),
            ClientError::Transfer(_) => "CONTENT_INVALID",
            ClientError::Mutability(_) => "MALFORMED_CONTENT",
        };
        JsFailure(error(code, e))
    }
}

/// An identity (person or group) as this device sees it: the shell of an [`Account`].
#[wasm_bindgen]
pub struct WasmIdentity {
    inner: Rc<Mutex<Account<AnyStore>>>,
    node: NodeHandle,
    chain: BlockId,
    default_chain: Option<BlockId>,
    /// The recovery code made with this object (a person just created or recovered), shown
    /// once to the user; never stored.
    recovery_code: Option<Zeroizing<String>>,
}

impl WasmIdentity {
    /// Syncs the identity chain and its default chain (fetched from peers if the store lacks
    /// it: a device that just joined), then pushes what the account queued.
    async fn attach(account: Account<AnyStore>, node: &WasmNode) -> Result<Self, JsFailure> {
        let chain = account.chain();
        let default_chain = account.default_chain();
        node.handle.open(chain, None).await?;
        if let Some(default_chain) = default_chain {
            node.handle.open(default_chain, None).await?;
        }
        let inner = Rc::new(Mutex::new(account));
        flush(&mut *inner.lock().await, &node.handle).await?;
        Ok(WasmIdentity {
            inner,
            node: node.handle.clone(),
            chain,
            default_chain,
            recovery_code: None,
        })
    }
}

/// Pushes what the account queued to each chain's peers, in order.
pub(super) async fn flush(
    account: &mut Account<AnyStore>,
    node: &NodeHandle,
) -> Result<(), JsFailure> {
    for publication in account.take_outbox() {
        let blocks = publication
            .blocks
            .iter()
            .map(|b| b.bytes().to_vec())
            .collect();
        node.publish_with_content(publication.chain, blocks, publication.inline)
            .await?;
    }
    Ok(())
}

/// Runs an account step and pushes what it wrote, also when it failed part way (what it
/// stored is published either way).
macro_rules! step {
    ($account:ident, $node:expr, $call:expr) => {{
        let result = $call.await;
        flush(&mut $account, &$node).await?;
        result?
    }};
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
    /// Creates a person identity (kind `"person"`) whose first device is this one.
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
        let founder = person.inner.lock().await.as_member();
        Self::found(store, node, name, passphrase, relays, Some(founder)).await
    }

    async fn found(
        store: &WasmStore,
        node: &WasmNode,
        name: String,
        passphrase: String,
        relays: JsValue,
        founder: Option<(MemberEntry, PersonAnchor)>,
    ) -> Result<WasmIdentity, JsValue> {
        let relays = string_array(&relays, "relays")?;
        let keys = Keyring::RECOMMENDED
            .unlock(&store.store, &passphrase, &mut OsRng)
            .await
            .map_err(JsFailure::from)?;
        let kind = if founder.is_some() {
            Kind::Group
        } else {
            Kind::Person
        };
        // Every person gets a recovery key; its code is handed to the page once.
        let recovery = (kind == Kind::Person).then(|| RecoveryKey::generate(&mut OsRng));
        let (founder, anchor) = founder.unzip();
        let founding = Founding {
            kind,
            name,
            relays,
            founder,
            recovery: recovery.as_ref().map(RecoveryKey::public),
            anchor,
        };
        let account = Account::create(store.store.clone(), keys, founding, now(), &mut OsRng)
            .await
            .map_err(JsFailure::from)?;
        let mut identity = Self::attach(account, node).await?;
        identity.recovery_code = recovery.map(|key| key.to_code());
        Ok(identity)
    }

    /// Takes back the person of `chain` (which the store holds) with its recovery `code`,
    /// on this device: see [`Account::recover_kept`]. The new recovery code is on the result.
    pub async fn recover(
        store: &WasmStore,
        node: &WasmNode,
        chain: String,
        passphrase: String,
        code: String,
    ) -> Result<WasmIdentity, JsValue> {
        let chain = parse_id(&chain)?;
        let recovery = RecoveryKey::from_code(&code).map_err(JsFailure::from)?;
        let next = RecoveryKey::generate(&mut OsRng);
        let account = Account::recover_kept(
            store.store.clone(),
            chain,
            &Keyring::RECOMMENDED,
            &passphrase,
            &recovery,
            next.public(),
            now(),
            &mut OsRng,
        )
        .await
        .map_err(JsFailure::from)?;
        let mut identity = Self::attach(account, node).await?;
        identity.recovery_code = Some(next.to_code());
        Ok(identity)
    }

    /// The recovery code made with this object (`createIdentity`, `recoverIdentity`), to show
    /// the user once; `undefined` for an identity opened or joined.
    #[wasm_bindgen(getter, js_name = recoveryKey)]
    pub fn recovery_key(&self) -> Option<String> {
        self.recovery_code.as_ref().map(|code| code.to_string())
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
        let account = Account::open_sealed(
            store.store.clone(),
            chain,
            &Keyring::RECOMMENDED,
            &passphrase,
            &mut OsRng,
        )
        .await
        .map_err(JsFailure::from)?;
        Ok(Self::attach(account, node).await?)
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
        set(&object, "role", role_name(invitation.role));
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

    /// The ID of the identity's default chain, where `write` and `messages` go (`undefined`
    /// for an identity that names none).
    #[wasm_bindgen(getter, js_name = defaultChain)]
    pub fn default_chain(&self) -> Option<String> {
        self.default_chain.map(|chain| chain.to_string())
    }

    /// Re-reads the chain; resolves to the number of membership changes so far.
    pub fn refresh(&self) -> js_sys::Promise {
        let inner = self.inner.clone();
        promise(async move {
            let mut account = inner.lock().await;
            account.refresh().await?;
            Ok((account.identity().state().changes().len() as f64).into())
        })
    }

    /// A summary: `{ did, device, kind, name, current, pending: [{ request, member }],
    /// changes }`.
    pub fn summary(&self) -> js_sys::Promise {
        let inner = self.inner.clone();
        promise(async move {
            let account = inner.lock().await;
            let identity = account.identity();
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
            let account = inner.lock().await;
            Ok(account.identity().document().to_string().into())
        })
    }

    /// Current devices `[{ did, member, current }]` (`current`: this device).
    pub fn devices(&self) -> js_sys::Promise {
        let inner = self.inner.clone();
        promise(async move {
            let account = inner.lock().await;
            let identity = account.identity();
            let me = identity.device().did();
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
            let account = inner.lock().await;
            let list: Array = account
                .identity()
                .state()
                .members()
                .values()
                .map(|m| {
                    let o = Object::new();
                    set(&o, "did", m.did.clone());
                    set(&o, "role", role_name(m.role));
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
            let account = inner.lock().await;
            let expires = now().saturating_add(expires_in.max(0.0) as u64);
            let invitation = account.identity().invite(role, expires, &mut OsRng)?;
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
        person: Option<Rc<Mutex<Account<AnyStore>>>>,
    ) -> js_sys::Promise {
        let (inner, node) = (self.inner.clone(), self.node.clone());
        promise(async move {
            let invitation = Invitation::from_code(&code)?;
            let member = match person {
                Some(person) => Some(person.lock().await.as_member()),
                None => None,
            };
            let mut account = inner.lock().await;
            let request = step!(
                account,
                node,
                account.request_join(invitation, member, now())
            );
            Ok(request.to_string().into())
        })
    }

    /// Approves a pending join request.
    pub fn approve(&self, request: String) -> js_sys::Promise {
        let (inner, node) = (self.inner.clone(), self.node.clone());
        promise(async move {
            let request = parse_id(&request)?;
            let mut account = inner.lock().await;
            step!(account, node, account.approve(request, now(), &mut OsRng));
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Removes a member (a device of a person, a person of a group) and rekeys. The bound
    /// chains opened from this object are acknowledged first (see [`Account::remove`]).
    pub fn remove(&self, member: String) -> js_sys::Promise {
        let (inner, node) = (self.inner.clone(), self.node.clone());
        promise(async move {
            let mut account = inner.lock().await;
            step!(account, node, account.remove(&member, now(), &mut OsRng));
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Leaves (removes this device's member).
    pub fn leave(&self) -> js_sys::Promise {
        let (inner, node) = (self.inner.clone(), self.node.clone());
        promise(async move {
            let mut account = inner.lock().await;
            step!(account, node, account.leave(now()));
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Rotates this device's keys and keeps the new ones sealed under `passphrase` in the
    /// store (see [`Account::rotate_kept`]): a reload opens with them.
    pub fn rotate(&self, passphrase: String) -> js_sys::Promise {
        let (inner, node) = (self.inner.clone(), self.node.clone());
        promise(async move {
            let mut account = inner.lock().await;
            step!(
                account,
                node,
                account.rotate_kept(&Keyring::RECOMMENDED, &passphrase, now(), &mut OsRng)
            );
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
            let mut account = inner.lock().await;
            step!(account, node, account.set_policy(policy, now()));
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Brings the group's members' devices up to date with their person chains the store
    /// holds (see [`Account::follow_members`]); resolves to how many it updated.
    #[wasm_bindgen(js_name = followMembers)]
    pub fn follow_members(&self) -> js_sys::Promise {
        let (inner, node) = (self.inner.clone(), self.node.clone());
        promise(async move {
            let mut account = inner.lock().await;
            let updated = step!(account, node, account.follow_members(now(), &mut OsRng));
            Ok((updated as f64).into())
        })
    }

    /// Makes a new epoch if one is due (someone left, a device lacks the key).
    #[wasm_bindgen(js_name = rekeyIfDue)]
    pub fn rekey_if_due(&self) -> js_sys::Promise {
        let (inner, node) = (self.inner.clone(), self.node.clone());
        promise(async move {
            let mut account = inner.lock().await;
            let done = step!(account, node, account.rekey_if_due(now(), &mut OsRng));
            Ok(done.into())
        })
    }

    /// Writes a message to the identity's default chain, sealed under the current epoch;
    /// resolves to its block ID.
    pub fn write(&self, body: JsValue, topics: JsValue) -> js_sys::Promise {
        let (inner, node) = (self.inner.clone(), self.node.clone());
        promise(async move {
            let body = byte_array(&body, "body")?;
            let topics = string_array(&topics, "topics")?;
            let mut account = inner.lock().await;
            let id = step!(
                account,
                node,
                account.write(&Envelope::message(body), topics, now(), &mut OsRng)
            );
            Ok(id.to_string().into())
        })
    }

    /// The default chain's messages in chain order: `[{ id, author, time, body | error }]`.
    pub fn messages(&self) -> js_sys::Promise {
        let inner = self.inner.clone();
        promise(async move {
            let messages = inner.lock().await.messages().await?;
            Ok(message_array(messages))
        })
    }

    /// Founds a chain bound to this identity (see [`crate::identity::BoundChain`]) and syncs
    /// it.
    #[wasm_bindgen(js_name = createChain)]
    pub fn create_chain(&self) -> js_sys::Promise {
        let (inner, node) = (self.inner.clone(), self.node.clone());
        promise(async move {
            let mut account = inner.lock().await;
            let chain = account.create_chain(now(), &mut OsRng).await?;
            node.open(chain, None).await?;
            flush(&mut account, &node).await?;
            drop(account);
            Ok(WasmBoundChain::new(inner, node, chain).into())
        })
    }

    /// Opens a chain bound to this identity that the store holds, and syncs it. Fails with
    /// `NOT_BOUND` for a chain of another identity, `UNAUTHORISED` if its founder was not a
    /// device of this one.
    #[wasm_bindgen(js_name = openChain)]
    pub fn open_chain(&self, chain: String) -> js_sys::Promise {
        let (inner, node) = (self.inner.clone(), self.node.clone());
        promise(async move {
            let chain = parse_id(&chain)?;
            inner.lock().await.open_chain(chain).await?;
            node.open(chain, None).await?;
            Ok(WasmBoundChain::new(inner, node, chain).into())
        })
    }
}

/// `[{ id, author, device?, time, body | error }]`, `error` a JS `Error` with a `code`.
fn message_array(messages: Vec<Message>) -> JsValue {
    let list: Array = messages
        .into_iter()
        .map(|message| {
            let block = &message.block;
            let o = Object::new();
            set(&o, "id", block.id().to_string());
            set(&o, "author", hex(block.author().key_bytes()));
            if let Some(device) = message.device {
                set(&o, "device", device);
            }
            set(&o, "time", block.time() as f64);
            match message.content {
                Ok(Envelope {
                    kind: ContentKind::Message,
                    payload,
                    ..
                }) => set(&o, "body", Uint8Array::from(&payload[..])),
                // A newer client's kind of content: shown as unsupported, not misread.
                Ok(Envelope { kind, .. }) => set(
                    &o,
                    "error",
                    error(
                        "UNSUPPORTED_CONTENT",
                        format_args!("content of kind {kind:?} is not supported by this build"),
                    ),
                ),
                Err(e) => set(&o, "error", JsFailure::from(e).0),
            }
            JsValue::from(o)
        })
        .collect();
    list.into()
}

/// A chain bound to an identity (see [`crate::identity::BoundChain`]): written and read by
/// the identity's current devices only. It lives in the identity's account.
#[wasm_bindgen]
pub struct WasmBoundChain {
    pub(super) inner: Rc<Mutex<Account<AnyStore>>>,
    pub(super) node: NodeHandle,
    pub(super) chain: BlockId,
    /// Contents this handle fetches in the background (see `records`), so that listing
    /// again does not ask again.
    pub(super) fetching: Rc<std::cell::RefCell<std::collections::HashSet<[u8; 32]>>>,
    /// Contents seen all here: they stay so until their record is erased, when the record
    /// no longer names them, so a listing need not read the store for them again.
    pub(super) available: Rc<std::cell::RefCell<std::collections::HashSet<[u8; 32]>>>,
    /// Contents whose last background fetch found no room in the store's quota: listed
    /// `waitingForRoom` until a later fetch of them is not refused for room.
    pub(super) no_room: Rc<std::cell::RefCell<std::collections::HashSet<[u8; 32]>>>,
}

impl WasmBoundChain {
    fn new(inner: Rc<Mutex<Account<AnyStore>>>, node: NodeHandle, chain: BlockId) -> Self {
        WasmBoundChain {
            inner,
            node,
            chain,
            fetching: Rc::default(),
            available: Rc::default(),
            no_room: Rc::default(),
        }
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
        let (inner, node, chain) = (self.inner.clone(), self.node.clone(), self.chain);
        promise(async move {
            let body = byte_array(&body, "body")?;
            let topics = string_array(&topics, "topics")?;
            let mut account = inner.lock().await;
            let id = step!(
                account,
                node,
                account.write_to(&chain, &Envelope::message(body), topics, now(), &mut OsRng)
            );
            Ok(id.to_string().into())
        })
    }

    /// Messages in chain order: `[{ id, author, device?, time, body | error }]`.
    pub fn messages(&self) -> js_sys::Promise {
        let (inner, chain) = (self.inner.clone(), self.chain);
        promise(async move {
            let messages = inner.lock().await.messages_of(&chain).await?;
            Ok(message_array(messages))
        })
    }
}

fn parse_role(role: &str) -> Result<Role, JsFailure> {
    match role {
        "admin" => Ok(Role::Admin),
        "member" => Ok(Role::Member),
        other => Err(invalid(format_args!("unknown role {other:?}"))),
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Admin => "admin",
        Role::Member => "member",
    }
}
