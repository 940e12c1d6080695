// Compiled with `tsc --noEmit` by `npm test`: the declarations in pkg/index.d.ts must type
// the way an application uses the API.
import { Chain, EndraError, Node, Store, type Block, type ErrorCode } from '../pkg/index.js';

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
