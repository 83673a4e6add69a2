import { startPlatform } from './server/start.ts';

/** `npm start`: the whole platform on the configured store (embedded PGlite in ./data by default). */
const running = await startPlatform();
const { platform: p } = running;
p.log.info(`Urbis listening on ${running.url.replace('127.0.0.1', 'localhost')} (store: ${p.db.kind}, data: ${p.config.databaseUrl ? 'PostgreSQL' : p.config.dataDir})`);

let stopping = false;
const stop = async (sig: string) => {
  if (stopping) return;
  stopping = true;
  p.log.info(`${sig}: shutting down`);
  await running.close().catch((e) => p.log.error('shutdown failed', { err: e }));
  process.exit(0);
};
process.on('SIGINT', () => void stop('SIGINT'));
process.on('SIGTERM', () => void stop('SIGTERM'));
