// @ts-check
// Invitations: the one reader of every invitation text the package hands out.
//
// Two kinds exist, both strings in the `endra` URI family:
// - a chain invitation, `endra:<base64url JSON { v: 1, chain, relays, peer }>` — where to find
//   an open chain, unsigned (whoever holds it may read and write a plain chain);
// - an identity invitation, `endra-invite:<base58 CBOR>` (or its link form
//   `endra:join?code=…`) — a signed, one-time, expiring capability that every replica checks
//   when the join request that embeds it arrives (parsed and verified in Rust).
import { WasmIdentity } from './wasm/endra.js';
import { EndraError } from './errors.js';

/**
 * What an invitation says.
 * @typedef {{ kind: 'chain', chain: string, relays: string[], peer?: string }} ChainInvitation
 * @typedef {{ kind: 'identity', chain: string, relays: string[], expires: number, role: 'admin' | 'member', code: string }} IdentityInvitationInfo
 * @typedef {ChainInvitation | IdentityInvitationInfo} Invitation
 */

const IDENTITY_PREFIX = 'endra-invite:';
const LINK_PREFIX = 'endra:join?code=';

/**
 * The chain invitation text for `chain`, findable through `relays` and `peer`.
 * @param {string} chain
 * @param {string[]} relays
 * @param {string} peer
 */
export function chainInvitation(chain, relays, peer) {
  const json = JSON.stringify({ v: 1, chain, relays, peer });
  return `endra:${btoa(json).replaceAll('+', '-').replaceAll('/', '_').replaceAll('=', '')}`;
}

/**
 * The link form of an identity invitation code.
 * @param {string} code
 */
export function identityLink(code) {
  return `${LINK_PREFIX}${encodeURIComponent(code)}`;
}

/**
 * The identity invitation code in `text` (a code or its link), or `undefined`.
 * @param {unknown} text
 */
function identityCode(text) {
  const trimmed = String(text).trim();
  if (trimmed.startsWith(IDENTITY_PREFIX)) return trimmed;
  if (trimmed.startsWith(LINK_PREFIX)) {
    try {
      return decodeURIComponent(trimmed.slice(LINK_PREFIX.length));
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/**
 * Reads any invitation the package makes: a chain's (`chain.invite()`) or an identity's
 * (`inviteDevice()`, `group.invite()`, as code or link). Throws `INVITATION_INVALID` for
 * anything else. Needs the wasm module loaded (any `Endra` context did).
 * @param {unknown} text
 * @returns {Invitation}
 */
export function parseInvitation(text) {
  const code = identityCode(text);
  if (code !== undefined) {
    /** @type {{ chain: string, relays: string[], expires: number, role: 'admin' | 'member' }} */
    let value;
    try {
      value = WasmIdentity.parseInvitation(code);
    } catch (error) {
      const e = /** @type {{ message?: string }} */ (error);
      throw new EndraError(e?.message ?? 'not an Endra invitation', 'INVITATION_INVALID', { cause: error });
    }
    return { kind: 'identity', chain: value.chain, relays: value.relays, expires: value.expires, role: value.role, code };
  }
  try {
    const body = String(text).trim();
    if (!body.startsWith('endra:')) throw new Error('not an endra: URI');
    const value = JSON.parse(atob(body.slice('endra:'.length).replaceAll('-', '+').replaceAll('_', '/')));
    if (value.v !== 1 || typeof value.chain !== 'string' || !Array.isArray(value.relays)) throw new Error('bad fields');
    /** @type {ChainInvitation} */
    const invitation = { kind: 'chain', chain: value.chain, relays: value.relays.map(String) };
    if (typeof value.peer === 'string') invitation.peer = value.peer;
    return invitation;
  } catch (error) {
    throw new EndraError('not an Endra invitation', 'INVITATION_INVALID', { cause: error });
  }
}

/**
 * `text` read as an invitation of `kind`, or `INVITATION_INVALID` naming the call that takes it.
 * @template {Invitation['kind']} K
 * @param {unknown} text
 * @param {K} kind
 * @returns {Extract<Invitation, { kind: K }>}
 */
export function expectInvitation(text, kind) {
  const invitation = parseInvitation(text);
  if (invitation.kind !== kind) {
    const use = invitation.kind === 'chain' ? 'endra.joinChain' : 'endra.joinAsDevice or endra.joinGroup';
    throw new EndraError(`a ${invitation.kind} invitation: pass it to ${use}`, 'INVITATION_INVALID');
  }
  return /** @type {Extract<Invitation, { kind: K }>} */ (invitation);
}
