/**
 * Device secrets hashed at rest: passwords chosen by people with scrypt (node:crypto),
 *   scrypt$<N>$<r>$<p>$<salt base64url>$<hash base64url>
 * generated tokens (192 random bits) with SHA-256 (see hashToken).
 * Verification is constant-time. A verified-secret cache keyed by a SHA-256 of (hash, secret)
 * keeps reconnect storms from costing one scrypt each.
 */
import { createHash, randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';

const N = 16384;
const R = 8;
const P = 1;
const KEYLEN = 32;

function scrypt(secret: string, salt: Buffer, keylen: number, opts: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scryptCb(secret, salt, keylen, opts, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

export async function hashSecret(secret: string, cost: { N?: number } = {}): Promise<string> {
  if (typeof secret !== 'string' || secret.length < 8 || secret.length > 1024) throw new Error('a device secret has 8 to 1024 characters');
  const salt = randomBytes(16);
  const n = cost.N ?? N;
  const key = await scrypt(secret, salt, KEYLEN, { N: n, r: R, p: P, maxmem: 64 * 1024 * 1024 });
  return `scrypt$${n}$${R}$${P}$${salt.toString('base64url')}$${key.toString('base64url')}`;
}

const verified = new Map<string, true>();

/**
 * Generated tokens carry 192 random bits, so a fast hash is enough at rest (no dictionary to try):
 *   sha256$<hash base64url>
 */
export function hashToken(token: string): string {
  return `sha256$${createHash('sha256').update(token).digest('base64url')}`;
}

export async function verifySecret(secret: string, stored: string): Promise<boolean> {
  if (typeof secret !== 'string' || typeof stored !== 'string' || secret.length > 1024) return false;
  if (stored.startsWith('sha256$')) {
    const a = Buffer.from(hashToken(secret));
    const b = Buffer.from(stored);
    return a.length === b.length && timingSafeEqual(a, b);
  }
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const cacheKey = createHash('sha256').update(stored).update('\u0000').update(secret).digest('base64');
  if (verified.has(cacheKey)) return true;
  const [, n, r, p, saltB64, hashB64] = parts;
  const expected = Buffer.from(hashB64, 'base64url');
  let key: Buffer;
  try {
    key = await scrypt(secret, Buffer.from(saltB64, 'base64url'), expected.length, { N: Number(n), r: Number(r), p: Number(p), maxmem: 64 * 1024 * 1024 });
  } catch {
    return false;
  }
  const ok = key.length === expected.length && timingSafeEqual(key, expected);
  if (ok) {
    if (verified.size > 10_000) verified.clear();
    verified.set(cacheKey, true);
  }
  return ok;
}

/** Random device token (returned once to the caller, then only its hash is kept). */
export function generateToken(): string {
  return randomBytes(24).toString('base64url');
}

/** Drop cached verifications (after a rotation or revocation). */
export function forgetVerifications(): void {
  verified.clear();
}

/**
 * MQTT identity of a connecting client. Accepted forms:
 *   username = <device_id> (or <apikey>/<device_id>), password = the device secret
 *   username = "token", password = <device token>   (the token identifies the device)
 */
export function parseMqttUsername(username: string | undefined): { apikey?: string; deviceId?: string; tokenOnly: boolean } {
  if (!username) return { tokenOnly: false };
  if (username === 'token') return { tokenOnly: true };
  const i = username.indexOf('/');
  if (i > 0) return { apikey: username.slice(0, i), deviceId: username.slice(i + 1), tokenOnly: false };
  return { deviceId: username, tokenOnly: false };
}

/** Non-secret fingerprint of a token, to find its device without storing the token itself. */
export function tokenFingerprint(token: string): string {
  return createHash('sha256').update('urbis-device-token\u0000').update(token).digest('base64url').slice(0, 22);
}
