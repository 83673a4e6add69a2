import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { DeliveryError } from './notifier.ts';
import { HttpParseError, ResponseParser, type ParsedResponse } from './http1-parser.ts';

/**
 * A small HTTP/1.1 client for notification POSTs, written for the fan-out hot path (the undici
 * client cost ~20 % of the broker's core at 10,000 notifications/s, a third of it one `writev`
 * per POST, and with one request per connection its throughput was bounded by 32 connections /
 * round trip, so a slow moment of the receiver queued notifications behind it).
 *
 * Per origin: up to `connections` keep-alive connections, each with up to `pipelining` requests
 * in flight. Requests are queued per origin and written once per event-loop turn (setImmediate):
 * all requests a connection takes in that turn go out as ONE string in ONE write, so a tick's
 * hundred notifications cost a few syscalls. Connections are filled in order (the first one with
 * room takes as many as it can) to keep the number of writes low; a further connection opens only
 * when all are full.
 *
 * Failure model (delivery is at-least-once, the dispatcher retries): a connection that breaks
 * (error, reset, malformed response, the head request's timeout) fails every request in flight on
 * it; requests the server left unanswered after announcing the end (`Connection: close`, a body
 * read until close) were not processed and are queued again. Each request waits at most its
 * timeout, counted from the send (connecting and queueing included).
 */

export interface Origin {
  secure: boolean;
  /** host to connect to (IPv6 without brackets) */
  host: string;
  port: number;
}

interface Req {
  /** request head and body */
  data: string;
  deadline: number;
  timeoutMs: number;
  label: string;
  resolve: () => void;
  reject: (e: Error) => void;
}

/** without a `Keep-Alive: timeout` hint an idle connection is reused for this long */
const DEFAULT_IDLE_MS = 30_000;
/** a server's hint is honoured up to this */
const MAX_IDLE_MS = 600_000;
/** a connection idle for (hint - margin) is not reused: the server may be closing it right now */
const IDLE_MARGIN_MS = 1000;
/** how often timeouts are checked while requests are outstanding */
const SWEEP_MS = 100;

class Conn {
  readonly socket: Socket;
  /** written, unanswered, in order */
  readonly inflight: Req[] = [];
  /** index of the oldest unanswered request in inflight */
  head = 0;
  dead = false;
  idleSince = Date.now();
  idleMs = DEFAULT_IDLE_MS;
  private parser: ResponseParser;

  constructor(
    private pool: Pool,
    origin: Origin,
  ) {
    this.parser = new ResponseParser((r) => this.response(r));
    const s = origin.secure
      ? tlsConnect({ servername: isIP(origin.host) ? undefined : origin.host, ...pool.tls, host: origin.host, port: origin.port, ALPNProtocols: ['http/1.1'] })
      : netConnect({ host: origin.host, port: origin.port });
    this.socket = s;
    s.setNoDelay(true);
    s.on('data', (chunk: Buffer) => {
      if (this.dead) return;
      try {
        this.parser.execute(chunk);
      } catch (e) {
        this.fail(e instanceof HttpParseError ? `invalid response: ${e.message}` : String(e));
      }
    });
    s.on('end', () => {
      if (this.dead) return;
      try {
        // a body delimited by the end of the connection completes here (response() retires the connection)
        if (this.parser.end()) return;
      } catch (e) {
        this.fail(`invalid response: ${(e as Error).message}`);
        return;
      }
      this.fail('connection closed by the server');
    });
    s.on('error', (e: Error) => this.fail(`${e.name}: ${e.message}`));
    s.on('close', () => this.fail('connection closed'));
  }

  get outstanding(): number {
    return this.inflight.length - this.head;
  }

  /** can take a request now (alive, not past the server's idle limit) */
  usable(now: number): boolean {
    if (this.dead) return false;
    if (this.outstanding === 0 && now - this.idleSince > this.idleMs) {
      this.retire();
      return false;
    }
    return true;
  }

  write(reqs: Req[], from: number, to: number): void {
    if (this.outstanding === 0) this.socket.ref();
    let data = '';
    for (let i = from; i < to; i++) {
      this.inflight.push(reqs[i]);
      data += reqs[i].data;
    }
    this.socket.write(data);
  }

  private response(r: ParsedResponse): void {
    const req = this.inflight[this.head];
    if (!req) {
      this.fail('response without a request');
      return;
    }
    this.inflight[this.head++] = undefined as unknown as Req;
    if (this.head === this.inflight.length) {
      this.inflight.length = 0;
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.inflight.length) {
      this.inflight.splice(0, this.head);
      this.head = 0;
    }
    if (r.keepAliveMs !== undefined) this.idleMs = Math.max(0, Math.min(MAX_IDLE_MS, r.keepAliveMs - IDLE_MARGIN_MS));
    if (r.status >= 200 && r.status < 300) req.resolve();
    else req.reject(new DeliveryError(`HTTP ${r.status} from ${req.label}`, r.status));
    if (!r.keepAlive) {
      // the server processes nothing after this response: the rest goes out again elsewhere
      this.pool.requeue(this.takeRest());
      this.retire();
      return;
    }
    if (this.outstanding === 0) {
      this.idleSince = Date.now();
      this.socket.unref();
    }
    this.pool.freed();
  }

  private takeRest(): Req[] {
    const rest = this.inflight.slice(this.head);
    this.inflight.length = 0;
    this.head = 0;
    return rest;
  }

  /** Closes a connection that has nothing in flight (or whose rest was handed back). */
  retire(): void {
    if (this.dead) return;
    this.dead = true;
    this.pool.remove(this);
    this.socket.destroy();
  }

  /** The connection broke: every request in flight on it fails. */
  fail(reason: string, late?: Req, lateError?: Error): void {
    if (this.dead) return;
    this.dead = true;
    this.pool.remove(this);
    this.socket.destroy();
    for (const r of this.takeRest()) r.reject(r === late && lateError ? lateError : new DeliveryError(`${reason} (${r.label})`));
  }

  /**
   * Fails the connection if a request on it is past its deadline (responses come in order: a late
   * one holds back those behind it, so the connection cannot be kept).
   */
  checkTimeout(now: number): void {
    for (let i = this.head; i < this.inflight.length; i++) {
      const req = this.inflight[i];
      if (now < req.deadline) continue;
      this.fail('connection dropped after a timeout', req, new DeliveryError(`timeout: no response within ${req.timeoutMs} ms (${req.label})`));
      return;
    }
  }
}

class Pool {
  conns: Conn[] = [];
  /** requests not written yet */
  queue: Req[] = [];
  scheduled = false;

  constructor(
    private client: Http1Client,
    readonly origin: Origin,
  ) {}

  get tls(): ConnectionOptions | undefined {
    return this.client.tls;
  }

  enqueue(req: Req): void {
    this.queue.push(req);
    this.client.schedule(this);
  }

  /** Unanswered requests of a connection that closed cleanly: first in line again. */
  requeue(reqs: Req[]): void {
    if (reqs.length === 0) return;
    this.queue = reqs.concat(this.queue);
    this.client.schedule(this);
  }

  freed(): void {
    if (this.queue.length > 0) this.client.schedule(this);
  }

  remove(c: Conn): void {
    const i = this.conns.indexOf(c);
    if (i >= 0) this.conns.splice(i, 1);
    if (this.queue.length > 0) this.client.schedule(this);
  }

  /** Writes the queue out: fills connections in order, opens new ones while all are full. */
  flush(now: number): void {
    const q = this.queue;
    const depth = this.client.pipelining;
    let i = 0;
    for (let c = 0; c < this.conns.length && i < q.length; c++) {
      const conn = this.conns[c];
      if (!conn.usable(now)) {
        c--; // usable() removed it from conns
        continue;
      }
      const room = depth - conn.outstanding;
      if (room <= 0) continue;
      const to = Math.min(q.length, i + room);
      conn.write(q, i, to);
      i = to;
    }
    while (i < q.length && this.conns.length < this.client.connections) {
      const conn = new Conn(this, this.origin);
      this.conns.push(conn);
      const to = Math.min(q.length, i + depth);
      conn.write(q, i, to);
      i = to;
    }
    this.queue = i === 0 ? q : q.slice(i);
  }

  checkTimeouts(now: number): boolean {
    for (let c = this.conns.length - 1; c >= 0; c--) this.conns[c]?.checkTimeout(now);
    if (this.queue.length > 0) {
      // waiting for a free connection for too long
      const keep: Req[] = [];
      for (const r of this.queue) {
        if (now >= r.deadline) r.reject(new DeliveryError(`timeout: not sent within ${r.timeoutMs} ms (${r.label}), all connections busy`));
        else keep.push(r);
      }
      this.queue = keep;
    }
    return this.queue.length > 0 || this.conns.some((c) => c.outstanding > 0);
  }

  destroy(): void {
    const q = this.queue;
    this.queue = [];
    for (const r of q) r.reject(new DeliveryError(`notifier closed (${r.label})`));
    for (const c of [...this.conns]) c.fail('notifier closed');
  }
}

export class Http1Client {
  private pools = new Map<string, Pool>();
  private dirty: Pool[] = [];
  private immediate: NodeJS.Immediate | null = null;
  private sweepTimer: NodeJS.Timeout | null = null;

  constructor(
    readonly connections: number,
    readonly pipelining: number,
    /** extra options of https connections (ca, client certificates); verification stays on unless turned off here */
    readonly tls?: ConnectionOptions,
  ) {}

  /**
   * Queues a request (`data`: head and body, ready to write) to `origin`; `resolve` on a 2xx
   * answer, `reject` with a DeliveryError otherwise.
   */
  request(key: string, origin: Origin, data: string, timeoutMs: number, label: string, resolve: () => void, reject: (e: Error) => void): void {
    let pool = this.pools.get(key);
    if (!pool) this.pools.set(key, (pool = new Pool(this, origin)));
    pool.enqueue({ data, deadline: Date.now() + timeoutMs, timeoutMs, label, resolve, reject });
    if (!this.sweepTimer) {
      this.sweepTimer = setInterval(() => this.sweep(), SWEEP_MS);
      this.sweepTimer.unref();
    }
  }

  /** Writes the pool's queue at the end of this event-loop turn (one write per connection). */
  schedule(pool: Pool): void {
    if (pool.scheduled) return;
    pool.scheduled = true;
    this.dirty.push(pool);
    this.immediate ??= setImmediate(() => this.flush());
  }

  private flush(): void {
    this.immediate = null;
    const pools = this.dirty;
    this.dirty = [];
    const now = Date.now();
    for (const p of pools) {
      p.scheduled = false;
      p.flush(now);
    }
  }

  private sweep(): void {
    const now = Date.now();
    let busy = false;
    for (const p of this.pools.values()) if (p.checkTimeouts(now)) busy = true;
    if (!busy && this.sweepTimer) {
      clearInterval(this.sweepTimer);
      this.sweepTimer = null;
    }
    for (const [k, p] of this.pools) if (p.conns.length === 0 && p.queue.length === 0) this.pools.delete(k);
  }

  close(): void {
    if (this.immediate) clearImmediate(this.immediate);
    this.immediate = null;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
    for (const p of this.pools.values()) p.destroy();
    this.pools.clear();
    this.dirty = [];
  }
}
