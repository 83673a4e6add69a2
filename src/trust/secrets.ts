/**
 * Password hashing (scrypt, per-password salt, parameters stored with the hash), API-key and
 * session secrets (random, stored as SHA-256: high-entropy secrets need no slow hash), and
 * constant-time comparison. Secrets never go to the log.
 */
import { createHash, randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';

const scrypt = (pw: string, salt: Buffer, len: number, o: ScryptOptions) =>
  new Promise<Buffer>((res, rej) => scryptCb(pw, salt, len, o, (e, k) => (e ? rej(e) : res(k))));

/** N = 2^15, r = 8, p = 1 (OWASP minimum for scrypt), 64-byte key */
export const SCRYPT = { N: 1 << 15, r: 8, p: 1, len: 64 };

export async function hashPassword(pw: string, params = SCRYPT): Promise<string> {
  const salt = randomBytes(16);
  const key = await scrypt(pw.normalize('NFKC'), salt, params.len, { N: params.N, r: params.r, p: params.p, maxmem: 256 * params.N * params.r });
  return `scrypt$${params.N}$${params.r}$${params.p}$${salt.toString('base64url')}$${key.toString('base64url')}`;
}

export async function verifyPassword(pw: string, stored: string): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [N, r, p] = parts.slice(1, 4).map(Number);
  if (!N || !r || !p || N > 1 << 20) return false;
  const salt = Buffer.from(parts[4], 'base64url');
  const want = Buffer.from(parts[5], 'base64url');
  const got = await scrypt(pw.normalize('NFKC'), salt, want.length, { N, r, p, maxmem: 256 * N * r });
  return got.length === want.length && timingSafeEqual(got, want);
}

/** a hash to verify against when the user does not exist (same cost, no user enumeration by timing) */
let dummy: Promise<string> | undefined;
export function dummyHash(): Promise<string> {
  return (dummy ??= hashPassword(randomToken(16)));
}

export function randomToken(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
}

/** human-typable one-time password: 20 chars from an unambiguous alphabet (~100 bits) */
export function oneTimePassword(): string {
  const A = 'abcdefghjkmnpqrstuvwxyzABCDEFGHJKMNPQRSTUVWXYZ23456789';
  const b = randomBytes(20);
  let s = '';
  for (const x of b) s += A[x % A.length];
  return s;
}

export function sha256(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

export function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** API keys look like `urbis_<id>_<secret>`; the id is public (lookup), the secret is hashed at rest */
export const API_KEY_RE = /^urbis_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$/;

export function newApiKey(): { id: string; secret: string; token: string } {
  const A = 'abcdefghijklmnopqrstuvwxyz0123456789';
  let id = '';
  for (const x of randomBytes(12)) id += A[x % A.length];
  const secret = randomToken(32);
  return { id, secret, token: `urbis_${id}_${secret}` };
}
