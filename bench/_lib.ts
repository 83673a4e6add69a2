import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import pg from 'pg';
import { writeFileSync, mkdtempSync, rmSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Shared benchmark plumbing: start the broker pinned to one core, drive it with wrk from another. */

export async function startBroker(env: Record<string, string>, core = '0'): Promise<{ url: string; proc: ChildProcess; stop(): Promise<void>; dataDir: string }> {
  const port = 18000 + Math.floor(Math.random() * 2000);
  const dataDir = mkdtempSync(join(tmpdir(), 'urbis-bench-'));
  // BENCH_BROKER_NODE_ARGS: extra node flags for the broker process, e.g. "--cpu-prof --cpu-prof-dir=prof"
  const args = [...(process.env.BENCH_BROKER_NODE_ARGS?.split(' ').filter(Boolean) ?? []), '--import', 'tsx', 'src/main.ts'];
  const useTaskset = spawnSync('which', ['taskset']).status === 0;
  const cmd = useTaskset ? 'taskset' : process.execPath;
  const full = useTaskset ? ['-c', core, process.execPath, ...args] : args;
  const proc = spawn(cmd, full, {
    env: { ...process.env, PORT: String(port), URBIS_AUTH: 'off', URBIS_DEMO: 'off', MQTT_PORT: '0', URBIS_LOG: 'warn', URBIS_DATA_DIR: dataDir, URBIS_MAX_LIMIT: '5000', ...env },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 300; i++) {
    try {
      const r = await fetch(url + '/health');
      if (r.ok) break;
    } catch {
      /* not up yet */
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    proc,
    dataDir,
    async stop() {
      proc.kill('SIGTERM');
      await new Promise((r) => proc.once('exit', r));
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface WrkResult {
  rps: number;
  p50ms: number;
  p99ms: number;
  errors: number;
}

/** Runs wrk (Debian) with an optional Lua script; falls back to a simple Node load loop when wrk is absent. */
export function wrk(url: string, opts: { seconds?: number; connections?: number; threads?: number; lua?: string; core?: string } = {}): WrkResult {
  const dir = mkdtempSync(join(tmpdir(), 'urbis-wrk-'));
  const args = ['-t', String(opts.threads ?? 1), '-c', String(opts.connections ?? 32), '-d', `${opts.seconds ?? 5}s`, '--latency'];
  if (opts.lua) {
    const f = join(dir, 's.lua');
    writeFileSync(f, opts.lua);
    args.push('-s', f);
  }
  args.push(url);
  const useTaskset = spawnSync('which', ['taskset']).status === 0;
  const r = useTaskset ? spawnSync('taskset', ['-c', opts.core ?? '1', 'wrk', ...args], { encoding: 'utf8' }) : spawnSync('wrk', args, { encoding: 'utf8' });
  rmSync(dir, { recursive: true, force: true });
  if (r.status !== 0) throw new Error(`wrk failed: ${r.stderr || r.error}`);
  const out = r.stdout;
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0);
  const lat = (p: string) => {
    const m = new RegExp(`\\s${p}%\\s+([\\d.]+)(us|ms|s)`).exec(out);
    if (!m) return NaN;
    const v = Number(m[1]);
    return m[2] === 'us' ? v / 1000 : m[2] === 's' ? v * 1000 : v;
  };
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const sockErr = /Socket errors:.*?connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const errors = non2xx + (sockErr ? sockErr.slice(1).reduce((a, b) => a + Number(b), 0) : 0);
  return { rps, p50ms: lat('50'), p99ms: lat('99'), errors };
}

export function table(rows: Record<string, string | number>[]): void {
  const cols = Object.keys(rows[0] ?? {});
  const w = cols.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c]).length)));
  const line = (vals: string[]) => '| ' + vals.map((v, i) => v.padEnd(w[i])).join(' | ') + ' |';
  console.log(line(cols));
  console.log('|' + w.map((x) => '-'.repeat(x + 2)).join('|') + '|');
  for (const r of rows) console.log(line(cols.map((c) => String(r[c]))));
}

export const fmt = (n: number, d = 0) => (Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }) : '-');

/**
 * CPU seconds used so far by processes, grouped: the given pids by label, every other process by
 * its name (postgres, wrk, kworker...). Two snapshots around a run show where the time went.
 */
export function cpuSnapshot(pids: Record<string, number> = {}): Map<string, number> {
  const byPid = new Map(Object.entries(pids).map(([label, pid]) => [String(pid), label]));
  // per process ("label pid"): a process that ended between two snapshots must not count as
  // negative time for its group (pooled database connections come and go)
  const m = new Map<string, number>();
  let dirs: string[] = [];
  try {
    dirs = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return m; // no procfs (not Linux)
  }
  for (const d of dirs) {
    try {
      const st = readFileSync(`/proc/${d}/stat`, 'utf8');
      const name = st.slice(st.indexOf('(') + 1, st.lastIndexOf(')')).replace(/\/.*/, '');
      const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
      m.set(`${byPid.get(d) ?? name} ${d}`, (Number(f[11]) + Number(f[12])) / 100);
    } catch {
      /* the process ended meanwhile */
    }
  }
  return m;
}

/** CPU use between two snapshots as "label 97%, postgres 80%, ..." (share of one core), top `n`. */
export function cpuDelta(a: Map<string, number>, b: Map<string, number>, seconds: number, n = 4): string {
  const byGroup = new Map<string, number>();
  for (const [k, v] of b) {
    const x = v - (a.get(k) ?? 0);
    const g = k.slice(0, k.lastIndexOf(' '));
    if (x > 0) byGroup.set(g, (byGroup.get(g) ?? 0) + x);
  }
  return [...byGroup].sort((p, q) => q[1] - p[1]).slice(0, n).map(([k, x]) => `${k} ${Math.round((100 * x) / seconds)}%`).join(', ');
}

/** Waits (up to `maxS` seconds) until no autovacuum worker runs in the database at `url`: latency figures are taken on a settled server. */
export async function quietDatabase(url: string, maxS = 60): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    for (let i = 0; i < maxS * 10; i++) {
      const r = await c.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'autovacuum worker'");
      if (r.rows[0].n === 0) return;
      await new Promise((res) => setTimeout(res, 100));
    }
  } finally {
    await c.end();
  }
}

const BROKER_TABLES = 'entities, entity_geo, tenants, jsonld_contexts, schema_migrations';

/** Empties the broker's tables in the PostgreSQL database at `url`; false when it is not reachable. */
export async function resetBrokerTables(url: string): Promise<boolean> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1000 });
  try {
    await c.connect();
    await c.query(`DROP TABLE IF EXISTS ${BROKER_TABLES} CASCADE`);
    return true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => {});
  }
}
