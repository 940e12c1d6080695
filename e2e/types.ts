// Compiled with `tsc --noEmit` by `npm test`: the declarations in pkg/index.d.ts must type
// the way an application uses the API.
import {
  BoundChain, Chain, Endra, EndraError, Group, Identity, Node, Record, Store,
  type Block, type ContentProgress, type RecordVersion, type RecordEvent, type DidDocument, type ErrorCode, type Invitation, type SubscribedMessage,
} from '../pkg/index.js';

export async function identities(endra: Endra, other: Endra): Promise<void> {
  const me: Identity = await endra.createIdentity({ name: 'Ada', passphrase: 'p' });
  const { code, expires } = await me.inviteDevice({ expiresIn: 60_000 });
  me.addEventListener('request', (event) => void me.approve(event.detail));
  const phone: Identity = await other.joinAsDevice(code, { passphrase: 'p', signal: AbortSignal.timeout(1000) });
  const doc: DidDocument = await phone.document();
  const keys: string[] = doc.keyAgreement;
  await me.until((s) => s.current && expires > 0, { signal: AbortSignal.timeout(1000) });
  await me.removeDevice((await me.devices())[0].did);
  await me.setPolicy({ rekeyEvery: 86_400_000, keepEpochs: 10 });
  const kept: number | null = (await me.summary()).policy.keepEpochs;
  void kept;
  const again: Identity = await endra.openIdentity(me.did, { passphrase: 'p' });
  const code0: string | undefined = me.recoveryKey;
  if (code0 !== undefined) {
    const back: Identity = await other.recoverIdentity(me.did, { recoveryKey: code0, passphrase: 'q', timeout: 5_000 });
    const next: string | undefined = back.recoveryKey;
    void next;
  }
  const resolved: DidDocument = await other.resolve(me.did, { timeout: 5_000 });
  const group: Group = await endra.createGroup({ passphrase: 'p', person: me });
  const invitation = await group.invite({ role: 'member' });
  const parsed: Invitation = endra.parseInvitation(invitation.url);
  if (parsed.kind === 'identity') {
    const role: 'admin' | 'member' = parsed.role;
    void role;
  }
  await other.joinGroup(invitation.code, { passphrase: 'p', person: phone });
  const roles: ('admin' | 'member')[] = (await group.members()).map((m) => m.role);
  const id: string = await group.write(new Uint8Array([1]));
  const chat: BoundChain = await group.createChain();
  await chat.write(new Uint8Array([2]), { topics: ['chat'] });
  chat.addEventListener('change', () => void chat.messages());
  const posted: Record = await chat.post('hello', { type: 'text/plain' });
  await chat.post(new Blob([new Uint8Array([3])], { type: 'image/png' }));
  chat.addEventListener('progress', (event) => {
    const p: ContentProgress = event.detail;
    if (p.status === 'fetching') void (p.done! / p.total!);
  });
  const text: string = await posted.text();
  const version: string = await posted.edit(new Uint8Array([4]));
  const history: RecordVersion[] = (await chat.record(posted.id))?.history ?? [];
  const kinds: ('created' | 'edited' | 'deleted')[] = history.map((v) => v.kind);
  await posted.delete({ erase: true });
  const listed: Record[] = await chat.records();
  void text; void version; void kinds; void listed;
  let cursor = -1;
  for await (const event of chat.recordEvents({ since: cursor, signal: AbortSignal.timeout(1000) })) {
    const told: RecordEvent = event;
    const kind: 'created' | 'edited' | 'deleted' | 'content' | 'withdrawn' = told.kind;
    if (told.kind === 'deleted' && told.erase) void told.record;
    cursor = told.seq;
    void kind; void told.version;
  }
  // @ts-expect-error records come from a chain
  void new Record();
  const same: BoundChain = await group.openChain(chat.id, { signal: AbortSignal.timeout(1000) });
  const bodies = (await same.messages()).map((m) => m.body ?? m.error);
  for await (const message of same.subscribe({ since: -1, signal: AbortSignal.timeout(1000) })) {
    const m: SubscribedMessage = message;
    const seq: number = m.seq;
    void seq;
  }
  // @ts-expect-error a group has no device methods
  await group.rotateKeys({ passphrase: 'p' });
  // @ts-expect-error: the passphrase that keeps the new keys is required
  await group.rotateKeys();
  // @ts-expect-error nor can one join a group as a device
  void group.inviteDevice;
  // @ts-expect-error signals go in an options object
  await me.until(() => true, AbortSignal.timeout(1));
  void keys; void roles; void id; void bodies; void again; void resolved;
}

export async function usage(): Promise<void> {
  const endra: Endra = await Endra.start({ store: 'app', relays: ['/ip4/127.0.0.1/tcp/4002/ws/p2p/x'] });
  const store: Store = endra.store;
  const node: Node | null = endra.node;
  const chain: Chain = await endra.createChain({ topics: ['chat'] });
  const block: Block = await chain.addBlock(new TextEncoder().encode('hi'), { topics: ['chat'] });
  const page: Block[] = await chain.blocks({ from: block.id, limit: 10, reverse: true, topic: 'chat' });
  const body: Uint8Array = page[0].body;
  const invitation: string = chain.invite();
  const joined: Chain = await endra.joinChain(invitation, { signal: AbortSignal.timeout(1000) });
  for await (const b of joined.subscribe({ since: block.seq })) {
    const seq: number = b.seq;
    void seq;
  }
  chain.addEventListener('block', (event) => {
    const id: string = event.detail.id;
    void id;
  });
  node?.addEventListener('connection', (event) => {
    const connected: boolean = event.detail.connected;
    void connected;
  });
  const peers: string[] = await chain.peers();
  await node?.useRelay('/ip4/127.0.0.1/udp/4003/webrtc-direct/p2p/x');
  await node?.synced(chain.id, { signal: AbortSignal.timeout(1000) });
  const online: boolean | undefined = node?.online;
  node?.reconnect();
  {
    await using scoped = await Endra.start({ store: await Store.memory(), network: false, maxContentBytes: 1024 * 1024 });
    const replica: Chain = await scoped.chainFromGenesis(page[0].bytes);
    void replica;
  }
  await endra.stop();
  try {
    await endra.openChain('bafy…');
  } catch (error) {
    if (error instanceof EndraError) {
      const code: ErrorCode = error.code;
      void code;
    }
  }
  // @ts-expect-error chains come from a context
  void Chain.create;
  // @ts-expect-error nodes too
  void Node.start;
  void body; void peers; void online; void store;
}
