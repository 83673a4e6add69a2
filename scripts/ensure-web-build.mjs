#!/usr/bin/env node
// `npm start` runs this first: builds the dashboard (web/dist) when it is missing or older than its
// sources, so the two-command quick start serves the dashboard without a separate build step.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const out = 'web/dist/index.html';
const newest = (dir) => {
  let t = 0;
  for (const f of readdirSync(dir, { withFileTypes: true })) {
    if (f.name === 'dist' || f.name === 'node_modules') continue;
    const p = join(dir, f.name);
    t = Math.max(t, f.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
};
if (existsSync(out) && statSync(out).mtimeMs >= newest('web')) process.exit(0);
console.log('building the dashboard (web/dist) ...');
const r = spawnSync('npm', ['run', 'build:web', '--silent'], { stdio: 'inherit' });
if (r.status !== 0) console.error('dashboard build failed: the platform starts without it (npm run build:web to retry)');
process.exit(0);
