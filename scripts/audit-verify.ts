/**
 * Verifies the trust layer's hash-chained audit log: `npm run audit:verify` (node --import tsx
 * scripts/audit-verify.ts [--anchor <seq>:<hash>]). Uses DATABASE_URL or URBIS_DATA_DIR like the
 * server. Exit code 0 when the chain is intact, 1 when it is broken, 2 on error.
 * Keep the printed head (seq:hash) outside the platform: passing it later as --anchor also
 * detects truncation of the newest records.
 */
import { loadConfig } from '../src/config.ts';
import { openStore } from '../src/store/open.ts';
import { verifyAudit } from '../src/trust/audit.ts';

const cfg = loadConfig();
const i = process.argv.indexOf('--anchor');
let anchor: { seq: number; hash: string } | undefined;
if (i > 0) {
  const [seq, hash] = String(process.argv[i + 1] ?? '').split(':');
  if (!Number.isInteger(Number(seq)) || !/^[0-9a-f]{64}$/.test(hash ?? '')) {
    console.error('--anchor expects <seq>:<sha256 hex>');
    process.exit(2);
  }
  anchor = { seq: Number(seq), hash };
}
try {
  const db = await openStore({ databaseUrl: cfg.databaseUrl, dataDir: cfg.dataDir });
  try {
    const r = await verifyAudit(db, anchor);
    if (r.ok) console.log(`audit log intact: ${r.records} records; head ${r.head.seq}:${r.head.hash}`);
    else console.error(`AUDIT LOG BROKEN at record ${r.broken!.seq}: ${r.broken!.reason} (${r.records} records verified before it)`);
    process.exitCode = r.ok ? 0 : 1;
  } finally {
    await db.close();
  }
} catch (e) {
  console.error(`audit verify failed: ${(e as Error).message}`);
  process.exitCode = 2;
}
