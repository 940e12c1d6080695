// The demo page: uses the npm package exactly as an application would.
import { Endra } from '../pkg/index.js';

const $ = (id) => document.getElementById(id);
const LAST_CHAIN = 'endra-demo:chain';
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The Endra context: the IndexedDB store and, when relays are configured, the node. */
let endra;
let chain;
let subscription;

function showError(error) {
  $('error').textContent = error ? `${error.code ?? 'ERROR'}: ${error.message}` : '';
}

function setBusy(busy) {
  for (const id of ['create', 'open', 'add', 'add100', 'invite', 'join']) $(id).disabled = busy;
}

async function showPeers() {
  $('online').textContent = endra?.node?.online ? 'online' : 'offline';
  $('peers').textContent = chain ? String((await chain.peers()).length) : '0';
}

/**
 * Opens the store and, if `npm start` runs relays (listed in config.json), a node that uses
 * them; without relays the chains stay on this device.
 */
async function start() {
  const config = await fetch('config.json').then((r) => (r.ok ? r.json() : { relays: [] })).catch(() => ({ relays: [] }));
  const relays = config.relays ?? [];
  endra = await Endra.start({ store: 'endra-demo', relays, network: relays.length > 0 });
  if (!endra.node) return;
  $('relay').textContent = relays[0];
  endra.node.addEventListener('connection', showPeers);
  endra.node.addEventListener('peer', showPeers);
}

async function run(action) {
  showError(null);
  setBusy(true);
  try {
    await action();
  } catch (error) {
    showError(error);
  } finally {
    setBusy(false);
  }
}

/** Renders the chain in chain order (height, then ID). */
async function render() {
  const blocks = [];
  let from;
  for (;;) {
    const page = await chain.blocks({ from, limit: 500 });
    blocks.push(...page);
    if (page.length < 500) break;
    from = page[page.length - 1].id;
  }
  const list = $('blocks');
  list.replaceChildren(...blocks.map((block) => {
    const item = document.createElement('li');
    item.dataset.id = block.id;
    item.dataset.seq = String(block.seq);
    const text = block.height === 0 ? '(genesis)' : decoder.decode(block.body);
    item.textContent = `${text} `;
    const meta = document.createElement('span');
    meta.className = 'meta';
    meta.textContent = `h${block.height} #${block.seq} ${block.id.slice(0, 14)}…`;
    item.append(meta);
    for (const topic of block.topics) {
      const tag = document.createElement('span');
      tag.className = 'topic';
      tag.textContent = topic;
      item.append(tag);
    }
    return item;
  }));
  $('count').textContent = String(blocks.length);
}

let renderQueued = null;
function scheduleRender() {
  renderQueued ??= Promise.resolve().then(async () => {
    renderQueued = null;
    await render();
  });
  return renderQueued;
}

async function use(opened) {
  subscription?.abort();
  chain?.close();
  chain = opened;
  localStorage.setItem(LAST_CHAIN, chain.id);
  $('chain-id').textContent = chain.id;
  $('open-id').value = chain.id;
  $('status').textContent = 'open';
  await render();
  await showPeers();
  // Live updates from this page and from other tabs of the same store.
  subscription = new AbortController();
  const signal = subscription.signal;
  const since = (await chain.count()) - 1;
  (async () => {
    for await (const _block of chain.subscribe({ since, signal })) {
      scheduleRender();
      showPeers();
    }
  })().catch(showError);
}

$('create').addEventListener('click', () => run(async () => {
  await use(await endra.createChain({ topics: ['demo'] }));
}));

$('open').addEventListener('click', () => run(async () => {
  await use(await endra.openChain($('open-id').value.trim()));
}));

$('invite').addEventListener('click', () => run(async () => {
  if (!chain) throw Object.assign(new Error('create or open a chain first'), { code: 'NO_CHAIN' });
  $('invitation').value = chain.invite();
  $('invitation').select();
}));

$('join').addEventListener('click', () => run(async () => {
  if (!endra.node) throw Object.assign(new Error('no relay to join through'), { code: 'NOT_CONNECTED' });
  $('status').textContent = 'joining…';
  await use(await endra.joinChain($('invitation').value, { signal: AbortSignal.timeout(30_000) }));
}));

function topics() {
  const topic = $('topic').value.trim();
  return topic ? [topic] : [];
}

$('add').addEventListener('click', () => run(async () => {
  if (!chain) throw Object.assign(new Error('create or open a chain first'), { code: 'NO_CHAIN' });
  await chain.addBlock(encoder.encode($('body').value || 'hello'), { topics: topics() });
  $('body').value = '';
  await scheduleRender();
}));

$('add100').addEventListener('click', () => run(async () => {
  if (!chain) throw Object.assign(new Error('create or open a chain first'), { code: 'NO_CHAIN' });
  const start = Date.now();
  const items = Array.from({ length: 100 }, (_, i) => ({ body: encoder.encode(`block ${i + 1}`), topics: topics() }));
  await chain.addBlocks(items);
  $('status').textContent = `added 100 blocks in ${Date.now() - start} ms`;
  await scheduleRender();
}));

await run(async () => {
  await start();
  const last = localStorage.getItem(LAST_CHAIN);
  if (last) await use(await endra.openChain(last));
});
document.body.dataset.ready = 'true';
