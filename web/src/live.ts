/**
 * Live feed client: GET /live (Server-Sent Events pushed from the platform's change bus).
 * Read with fetch + a stream reader (the session cookie travels with it, and the status of a refused
 * connection, 401/403, is visible, unlike with EventSource). Reconnects with back-off; after a
 * reconnect or a server `resync` event the listeners get a `resync` so views can refetch.
 */
import { SseParser } from './sse.ts';

/** One entity change as sent by src/dashboard/module.ts */
export interface LiveChange {
  id: string;
  type: string;
  kind: 'create' | 'update' | 'replace' | 'delete';
  /** changed attribute names (short) */
  attrs: string[];
  /** keyValues-like values of the changed attributes (absent for deletes) */
  values?: Record<string, unknown>;
  at: string;
}

export type LiveState = 'connecting' | 'open' | 'closed';
type Listener = (changes: LiveChange[]) => void;

export class LiveFeed {
  private listeners = new Set<Listener>();
  private stateListeners = new Set<(s: LiveState) => void>();
  private resyncListeners = new Set<() => void>();
  private ctrl: AbortController | null = null;
  private backoff = 1000;
  private stopped = false;
  private everOpen = false;
  state: LiveState = 'closed';
  /** count of change messages received (exposed for tests and the status bar) */
  received = 0;

  constructor(private url = '/live') {}

  onChange(l: Listener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
  onState(l: (s: LiveState) => void): void {
    this.stateListeners.add(l);
  }
  onResync(l: () => void): void {
    this.resyncListeners.add(l);
  }

  start(): void {
    this.stopped = false;
    void this.loop();
  }
  stop(): void {
    this.stopped = true;
    this.ctrl?.abort();
  }
  /** reconnect now (e.g. after sign-in) */
  restart(): void {
    this.backoff = 1000;
    this.ctrl?.abort();
    this.wake?.();
  }
  private wake: (() => void) | null = null;

  private setState(s: LiveState): void {
    this.state = s;
    for (const l of this.stateListeners) l(s);
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      this.ctrl = new AbortController();
      this.setState('connecting');
      try {
        const res = await fetch(this.url, {
          headers: { accept: 'text/event-stream' },
          credentials: 'same-origin',
          signal: this.ctrl.signal,
          cache: 'no-store',
        });
        if (!res.ok || !res.body) throw new Error(`live feed: ${res.status}`);
        this.setState('open');
        if (this.everOpen) for (const l of this.resyncListeners) l();
        this.everOpen = true;
        this.backoff = 1000;
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        const parser = new SseParser();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          for (const m of parser.push(value)) this.dispatch(m.event, m.data);
        }
      } catch {
        // aborted or network error: fall through to the back-off
      }
      this.setState('closed');
      if (this.stopped) return;
      await new Promise<void>((r) => {
        const timer = setTimeout(r, this.backoff);
        this.wake = () => {
          clearTimeout(timer);
          r();
        };
      });
      this.wake = null;
      this.backoff = Math.min(this.backoff * 2, 30_000);
    }
  }

  private dispatch(event: string, data: string): void {
    if (event === 'resync') {
      for (const l of this.resyncListeners) l();
      return;
    }
    if (event !== 'change') return;
    let changes: LiveChange[];
    try {
      const parsed = JSON.parse(data) as LiveChange | LiveChange[];
      changes = Array.isArray(parsed) ? parsed : [parsed];
    } catch {
      return;
    }
    this.received += changes.length;
    for (const l of this.listeners) l(changes);
  }
}

export const live = new LiveFeed();
