// @ts-check
// The JavaScript API of Endra: the package entry. `Endra.start` is the way in; the other
// classes are what it hands out (and `Store`, to choose where the data lives).
export { EndraError } from './errors.js';
export { Endra } from './context.js';
export { Store } from './store.js';
export { Node } from './node.js';
export { Chain } from './chain.js';
export { BoundChain } from './bound-chain.js';
export { Record } from './record.js';
export { Identity, Group } from './identity.js';
