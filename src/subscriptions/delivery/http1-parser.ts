/**
 * Incremental parser of HTTP/1.x responses on one connection, fed with whatever the socket read
 * (responses may be split anywhere, several may arrive in one chunk when requests are pipelined).
 * It reports each final response's status and whether the connection may carry the next one; the
 * body is skipped (a notification's answer carries nothing we use). Handles 1xx interim responses,
 * Content-Length and chunked bodies (with extensions and trailers), bodiless statuses (204, 304)
 * and bodies delimited by the end of the connection (`end()`).
 */

export interface ParsedResponse {
  status: number;
  /** the server keeps the connection open for further requests */
  keepAlive: boolean;
  /** `Keep-Alive: timeout=<s>` of the response, in ms (how long the server keeps an idle connection) */
  keepAliveMs?: number;
}

export class HttpParseError extends Error {}

const enum State {
  Head,
  Length,
  ChunkSize,
  ChunkData,
  ChunkDataEnd,
  Trailers,
  UntilClose,
  Failed,
}

/** a larger head is refused (undici and node:http default to 16 KiB) */
const MAX_HEAD = 64 * 1024;
/** a chunk-size line (size + extensions) longer than this is malformed */
const MAX_CHUNK_LINE = 4096;

const CONTENT_LENGTH = Buffer.from('content-length');
const TRANSFER_ENCODING = Buffer.from('transfer-encoding');
const CONNECTION = Buffer.from('connection');
const KEEP_ALIVE = Buffer.from('keep-alive');

const isDigit = (b: number) => b >= 48 && b <= 57;

/** the CRLF at or after `from` before `to`, else `to` (the head's last line has none) */
function indexOfCrlf(buf: Buffer, from: number, to: number): number {
  for (let i = from; i < to - 1; i++) if (buf[i] === 13 && buf[i + 1] === 10) return i;
  return to;
}

/** header name at `at` equals `lower` (ASCII, case-insensitively) */
function nameIs(buf: Buffer, at: number, lower: Buffer): boolean {
  for (let i = 0; i < lower.length; i++) {
    const b = buf[at + i];
    if ((b >= 65 && b <= 90 ? b | 0x20 : b) !== lower[i]) return false;
  }
  return true;
}

/** a header value, trimmed and lower-cased */
function valueOf(buf: Buffer, from: number, to: number): string {
  while (from < to && (buf[from] === 32 || buf[from] === 9)) from++;
  while (to > from && (buf[to - 1] === 32 || buf[to - 1] === 9)) to--;
  return buf.toString('latin1', from, to).toLowerCase();
}

export class ResponseParser {
  private state = State.Head;
  /** bytes of an incomplete head (or chunk-size / trailer line) carried over to the next chunk */
  private partial: Buffer | null = null;
  private remaining = 0;
  private current: ParsedResponse | null = null;

  constructor(private onResponse: (r: ParsedResponse) => void) {}

  /** Parses a chunk; throws HttpParseError on a malformed response (the connection is unusable after). */
  execute(chunk: Buffer): void {
    if (this.state === State.Failed) throw new HttpParseError('parser failed earlier');
    let buf = chunk;
    if (this.partial) {
      buf = Buffer.concat([this.partial, chunk]);
      this.partial = null;
    }
    try {
      let pos = 0;
      while (pos < buf.length) {
        switch (this.state) {
          case State.Head: {
            const end = buf.indexOf('\r\n\r\n', pos, 'latin1');
            if (end < 0) {
              if (buf.length - pos > MAX_HEAD) throw new HttpParseError('response head too large');
              this.partial = buf.subarray(pos);
              return;
            }
            if (end - pos > MAX_HEAD) throw new HttpParseError('response head too large');
            this.head(buf, pos, end);
            pos = end + 4;
            break;
          }
          case State.Length: {
            const n = Math.min(this.remaining, buf.length - pos);
            pos += n;
            this.remaining -= n;
            if (this.remaining === 0) this.complete();
            break;
          }
          case State.ChunkSize: {
            const line = this.line(buf, pos, MAX_CHUNK_LINE);
            if (line === null) return;
            pos = line.next;
            const semi = line.text.indexOf(';');
            const hex = (semi < 0 ? line.text : line.text.slice(0, semi)).trim();
            if (!/^[0-9a-fA-F]{1,12}$/.test(hex)) throw new HttpParseError(`invalid chunk size "${hex}"`);
            const size = parseInt(hex, 16);
            if (size === 0) this.state = State.Trailers;
            else {
              this.remaining = size;
              this.state = State.ChunkData;
            }
            break;
          }
          case State.ChunkData: {
            const n = Math.min(this.remaining, buf.length - pos);
            pos += n;
            this.remaining -= n;
            if (this.remaining === 0) {
              this.state = State.ChunkDataEnd;
              this.remaining = 2;
            }
            break;
          }
          case State.ChunkDataEnd: {
            // the CRLF after a chunk's data (may itself be split)
            const want = this.remaining === 2 ? 13 : 10;
            if (buf[pos] !== want) throw new HttpParseError('missing CRLF after chunk data');
            pos++;
            if (--this.remaining === 0) this.state = State.ChunkSize;
            break;
          }
          case State.Trailers: {
            const line = this.line(buf, pos, MAX_HEAD);
            if (line === null) return;
            pos = line.next;
            if (line.text === '') this.complete();
            break;
          }
          case State.UntilClose:
            return;
          default:
            throw new HttpParseError('parser failed earlier');
        }
      }
    } catch (e) {
      this.state = State.Failed;
      this.partial = null;
      throw e;
    }
  }

  /** No response is being read (nothing partial): the connection may close or be reused cleanly. */
  get between(): boolean {
    return this.state === State.Head && this.partial === null;
  }

  /**
   * The connection ended: completes a body read until close; throws HttpParseError when a
   * response was cut short. Returns whether a response completed.
   */
  end(): boolean {
    if (this.state === State.UntilClose) {
      this.state = State.Head;
      const r = this.current!;
      this.current = null;
      r.keepAlive = false;
      this.onResponse(r);
      return true;
    }
    if (!this.between) {
      this.state = State.Failed;
      throw new HttpParseError('connection closed in the middle of a response');
    }
    return false;
  }

  /** One CRLF-terminated line from pos, or null (the rest is kept for the next chunk). */
  private line(buf: Buffer, pos: number, max: number): { text: string; next: number } | null {
    const end = buf.indexOf('\r\n', pos, 'latin1');
    if (end < 0) {
      if (buf.length - pos > max) throw new HttpParseError('line too long');
      this.partial = buf.subarray(pos);
      return null;
    }
    if (end - pos > max) throw new HttpParseError('line too long');
    return { text: buf.toString('latin1', pos, end), next: end + 2 };
  }

  /**
   * The head in buf[from, to) (without the blank line). Read from the bytes: per response only the
   * status and four header names matter, and building strings for every line was most of the
   * parser's garbage at 10,000 responses/s.
   */
  private head(buf: Buffer, from: number, to: number): void {
    let eol = indexOfCrlf(buf, from, to);
    // "HTTP/1.x SSS" then a space (reason) or the end of the line
    if (
      eol - from < 12 || buf[from] !== 72 || buf[from + 1] !== 84 || buf[from + 2] !== 84 || buf[from + 3] !== 80 ||
      buf[from + 4] !== 47 || buf[from + 5] !== 49 || buf[from + 6] !== 46 || (buf[from + 7] !== 48 && buf[from + 7] !== 49) ||
      buf[from + 8] !== 32 || !isDigit(buf[from + 9]) || !isDigit(buf[from + 10]) || !isDigit(buf[from + 11]) ||
      (eol > from + 12 && buf[from + 12] !== 32)
    ) {
      throw new HttpParseError(`invalid status line "${buf.toString('latin1', from, Math.min(eol, from + 60))}"`);
    }
    const http10 = buf[from + 7] === 48;
    const status = (buf[from + 9] - 48) * 100 + (buf[from + 10] - 48) * 10 + (buf[from + 11] - 48);
    let length = -1;
    let chunked = false;
    let transferEncoding = false;
    let close = false;
    let keepAliveToken = false;
    let keepAliveMs: number | undefined;
    let line = eol + 2;
    while (line < to) {
      eol = indexOfCrlf(buf, line, to);
      let colon = -1;
      for (let i = line; i < eol; i++) {
        if (buf[i] === 58) {
          colon = i;
          break;
        }
      }
      if (colon < 0) throw new HttpParseError('invalid header line');
      if (colon === line || buf[colon - 1] === 32 || buf[colon - 1] === 9) throw new HttpParseError('invalid header name');
      const n = colon - line;
      if (n === 14 && nameIs(buf, line, CONTENT_LENGTH)) {
        const v = buf.toString('latin1', colon + 1, eol).trim();
        if (!/^\d{1,15}$/.test(v)) throw new HttpParseError(`invalid content-length "${v}"`);
        const len = Number(v);
        if (length >= 0 && length !== len) throw new HttpParseError('conflicting content-length');
        length = len;
      } else if (n === 17 && nameIs(buf, line, TRANSFER_ENCODING)) {
        transferEncoding = true;
        // chunked only when it is the final coding; any other final coding is read until close
        chunked = /(?:^|,)\s*chunked\s*$/i.test(buf.toString('latin1', colon + 1, eol));
      } else if (n === 10 && nameIs(buf, line, CONNECTION)) {
        const v = valueOf(buf, colon + 1, eol);
        if (v === 'keep-alive') keepAliveToken = true;
        else if (v === 'close') close = true;
        else {
          for (const t of v.split(',')) {
            const tok = t.trim();
            if (tok === 'close') close = true;
            else if (tok === 'keep-alive') keepAliveToken = true;
          }
        }
      } else if (n === 10 && nameIs(buf, line, KEEP_ALIVE)) {
        const km = /(?:^|[,;\s])timeout\s*=\s*(\d+)/.exec(valueOf(buf, colon + 1, eol));
        if (km) keepAliveMs = Number(km[1]) * 1000;
      }
      line = eol + 2;
    }
    if (status < 200) {
      // 1xx: interim (100 Continue, 103 Early Hints); the final response follows. 101 would switch
      // protocols, which a POST of ours never asks for.
      if (status === 101) throw new HttpParseError('unexpected 101 Switching Protocols');
      return;
    }
    const keepAlive = !close && (!http10 || keepAliveToken);
    this.current = { status, keepAlive, keepAliveMs };
    if (status === 204 || status === 304) this.complete();
    else if (transferEncoding) {
      if (chunked) {
        // with both, Transfer-Encoding wins and the connection must not be reused (RFC 9112 6.3)
        if (length >= 0) this.current.keepAlive = false;
        this.state = State.ChunkSize;
      } else this.state = State.UntilClose;
    } else if (length > 0) {
      this.remaining = length;
      this.state = State.Length;
    } else if (length === 0) this.complete();
    else this.state = State.UntilClose;
  }

  private complete(): void {
    const r = this.current!;
    this.current = null;
    this.state = State.Head;
    this.onResponse(r);
  }
}
