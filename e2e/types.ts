// Compiled with `tsc --noEmit` by `npm test`: the declarations in pkg/index.d.ts must type
// the way an application uses the API.
import { BoundChain, Chain, EndraError, Group, Identity, Node, Store, type Block, type DidDocument, type ErrorCode } from '../pkg/index.js';

export async function identities(store: Store, node: Node): Promise<void> {
  const me: Identity = await Identity.create({ store, node, name: 'Ada', passphrase: 'p' });
  const { code, expires } = await me.inviteDevice({ expiresIn: 60_000 });
  me.addEventListener('request', (event) => void me.approve(event.detail));
  const other: Identity = await Identity.joinAsDevice(code, { store, node, passphrase: 'p' });
  const doc: DidDocument = await other.document();
  const keys: string[] = doc.keyAgreement;
  await me.until((s) => s.current && expires > 0);
  await me.removeDevice((await me.devices())[0].did);
  await me.setPolicy({ rekeyEvery: 86_400_000, keepEpochs: 10 });
  const kept: number | null = (await me.summary()).policy.keepEpochs;
  void kept;
  const group: Group = await Group.create({ store, node, passphrase: 'p', person: me });
  const invitation = await group.invite({ role: 'member' });
  await Group.join(invitation.code, { store, node, passphrase: 'p', person: other });
  const roles: ('admin' | 'member')[] = (await group.members()).map((m) => m.role);
  const id: string = await group.write(new Uint8Array([1]));
  const chat: BoundChain = await group.createChain();
  await chat.write(new Uint8Array([2]), { topics: ['chat'] });
  chat.addEventListener('change', () => void chat.messages());
  const same: BoundChain = await group.openChain(chat.id, { signal: AbortSignal.timeout(1000) });
  const bodies = (await same.messages()).map((m) => m.body ?? m.error);
  void keys; void roles; void id; void bodies;
}

export async function usage(): Promise<void> {
  const store: Store = await Store.indexedDb('app');
  const node: Node = await Node.start({ store, relays: ['/ip4/127.0.0.1/tcp/4002/ws/p2p/x'] });
  const chain = await Chain.create({ store, node, topics: ['chat'] });
  const block: Block = await chain.addBlock(new TextEncoder().encode('hi'), { topics: ['chat'] });
  const page: Block[] = await chain.blocks({ from: block.id, limit: 10, reverse: true, topic: 'chat' });
  const body: Uint8Array = page[0].body;
  const invitation: string = chain.invite();
  const joined: Chain = await Chain.join(invitation, { store, node, signal: AbortSignal.timeout(1000) });
  for await (const b of joined.subscribe({ since: block.seq })) {
    const seq: number = b.seq;
    void seq;
  }
  chain.addEventListener('block', (event) => {
    const id: string = event.detail.id;
    void id;
  });
  node.addEventListener('connection', (event) => {
    const connected: boolean = event.detail.connected;
    void connected;
  });
  const peers: string[] = await chain.peers();
  await node.useRelay('/ip4/127.0.0.1/udp/4003/webrtc-direct/p2p/x');
  const online: boolean = node.online;
  node.reconnect();
  {
    await using scoped = await Node.start({ store });
    void scoped.peerId;
  }
  await node.stop();
  try {
    await Chain.open('bafy…', { store });
  } catch (error) {
    if (error instanceof EndraError) {
      const code: ErrorCode = error.code;
      void code;
    }
  }
  void body;
  void peers;
  void online;
}
