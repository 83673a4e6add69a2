/** Minimal leveled logger writing one line per event to stderr; silent in tests by default. */
const LEVELS = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 } as const;
type Level = keyof typeof LEVELS;

export interface Logger {
  debug(msg: string, data?: object): void;
  info(msg: string, data?: object): void;
  warn(msg: string, data?: object): void;
  error(msg: string, data?: object): void;
  child(name: string): Logger;
}

export function createLogger(level: string = process.env.URBIS_LOG ?? 'info', name = 'urbis'): Logger {
  const min = LEVELS[(level as Level)] ?? LEVELS.info;
  const emit = (lvl: Level, msg: string, data?: object) => {
    if (LEVELS[lvl] < min) return;
    const extra = data ? ' ' + safeJson(data) : '';
    process.stderr.write(`${new Date().toISOString()} ${lvl.toUpperCase().padEnd(5)} [${name}] ${msg}${extra}\n`);
  };
  return {
    debug: (m, d) => emit('debug', m, d),
    info: (m, d) => emit('info', m, d),
    warn: (m, d) => emit('warn', m, d),
    error: (m, d) => emit('error', m, d),
    child: (n) => createLogger(level, `${name}:${n}`),
  };
}

function safeJson(d: object): string {
  try {
    return JSON.stringify(d, (_k, v) => (v instanceof Error ? { message: v.message, stack: v.stack } : v));
  } catch {
    return String(d);
  }
}
