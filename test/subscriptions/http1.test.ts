import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as netServer, type AddressInfo, type Socket } from 'node:net';
import { once } from 'node:events';
import { HttpParseError, ResponseParser, type ParsedResponse } from '../../src/subscriptions/delivery/http1-parser.ts';
import { HttpNotifier } from '../../src/subscriptions/delivery/http-notifier.ts';
import { DeliveryError } from '../../src/subscriptions/delivery/notifier.ts';
import type { OutboxRow } from '../../src/subscriptions/delivery/outbox.ts';

// ---- parser --------------------------------------------------------------------------------------

function parse(chunks: (string | Buffer)[]): { got: ParsedResponse[]; parser: ResponseParser } {
  const got: ParsedResponse[] = [];
  const parser = new ResponseParser((r) => got.push(r));
  for (const c of chunks) parser.execute(typeof c === 'string' ? Buffer.from(c, 'latin1') : c);
  return { got, parser };
}

/** every way of cutting `s` in two, and byte by byte */
function splits(s: string): string[][] {
  const out: string[][] = [[s], [...s]];
  for (let i = 1; i < s.length; i++) out.push([s.slice(0, i), s.slice(i)]);
  return out;
}

const PIPELINED =
  'HTTP/1.1 204 No Content\r\nDate: x\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\n' +
  'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello' +
  'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nabcd\r\nA\r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\n' +
  'HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n' +
  'HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\nConnection: close\r\n\r\nno!';

test('parser: pipelined responses, however the bytes are split', () => {
  for (const chunks of splits(PIPELINED)) {
    const { got, parser } = parse(chunks);
    assert.deepEqual(
      got.map((r) => [r.status, r.keepAlive]),
      [[204, true], [200, true], [500, true], [201, true], [404, false]],
      JSON.stringify(chunks.map((c) => c.length)),
    );
    assert.equal(got[0].keepAliveMs, 5000);
    assert.ok(parser.between);
  }
});

test('parser: body until close, HTTP/1.0, 304 without body, Transfer-Encoding beside Content-Length', () => {
  for (const chunks of splits('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nsome body\r\n\r\nHTTP/1.1 junk')) {
    const { got, parser } = parse(chunks);
    assert.equal(got.length, 0, 'no length: the body runs to the end of the connection');
    assert.equal(parser.end(), true);
    assert.deepEqual(got.map((r) => [r.status, r.keepAlive]), [[200, false]]);
  }
  assert.deepEqual(parse(['HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n']).got[0].keepAlive, false);
  assert.deepEqual(parse(['HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n']).got[0].keepAlive, true);
  assert.deepEqual(parse(['HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\nHTTP/1.1 204 x\r\n\r\n']).got.map((r) => r.status), [304, 204]);
  const te = parse(['HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n']).got;
  assert.deepEqual(te.map((r) => [r.status, r.keepAlive]), [[200, false]]);
  const gz = parse(['HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxxxx']);
  assert.equal(gz.got.length, 0);
  assert.equal(gz.parser.end(), true);
});

test('parser: malformed responses and responses cut short are errors', () => {
  const bad = [
    'HTTP/2 200 OK\r\n\r\n',
    'HTTP/1.1 2000 OK\r\n\r\n',
    'garbage\r\n\r\n',
    'HTTP/1.1 200 OK\r\nno colon here\r\n\r\n',
    'HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n',
    'HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n',
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX',
    'HTTP/1.1 101 Switching Protocols\r\n\r\n',
  ];
  for (const b of bad) assert.throws(() => parse([b]), HttpParseError, b);
  assert.throws(() => parse(['HTTP/1.1 200 OK\r\nX: ' + 'a'.repeat(70 * 1024)]), /too large/);
  const cut = parse(['HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc']);
  assert.throws(() => cut.parser.end(), /middle of a response/);
  assert.equal(parse([]).parser.end(), false);
  // a failed parser stays failed
  const p = new ResponseParser(() => {});
  assert.throws(() => p.execute(Buffer.from('nope\r\n\r\n')));
  assert.throws(() => p.execute(Buffer.from('HTTP/1.1 204 x\r\n\r\n')), HttpParseError);
});

// ---- client against node:http --------------------------------------------------------------------

async function listen(handler: (req: IncomingMessage, res: ServerResponse, body: string) => void) {
  const sockets = new Set<Socket>();
  const srv = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => handler(req, res, body));
  });
  srv.on('connection', (s: Socket) => sockets.add(s));
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as AddressInfo).port;
  return { srv, port, sockets, close: () => new Promise<void>((r) => { srv.closeAllConnections(); srv.close(() => r()); }) };
}

const row = (endpoint: string, body: string, extra: Partial<OutboxRow> = {}): OutboxRow => ({
  seq: 0,
  attempts: 0,
  createdAt: 0,
  tenant: '',
  subscriptionId: 's',
  endpoint,
  headers: { 'Content-Type': 'application/json', 'X-Key': 'Value' },
  body,
  ...extra,
});

test('client: pipelined POSTs share connections, answers in order, headers and UTF-8 bodies intact', async () => {
  const got: { body: string; headers: IncomingMessage['headers']; socket: Socket; url: string }[] = [];
  const s = await listen((req, res, body) => {
    got.push({ body, headers: req.headers, socket: req.socket, url: req.url! });
    res.statusCode = 204;
    res.end();
  });
  const hn = new HttpNotifier({ connections: 4, pipelining: 16 });
  try {
    const url = `http://127.0.0.1:${s.port}/notify?x=1`;
    const bodies = Array.from({ length: 40 }, (_, i) => JSON.stringify({ i, name: 'Zürich ✓' }));
    await Promise.all(bodies.map((b) => hn.send(row(url, b))));
    assert.deepEqual(got.map((g) => g.body).sort(), [...bodies].sort());
    assert.equal(got[0].url, '/notify?x=1');
    assert.equal(got[0].headers['content-type'], 'application/json');
    assert.equal(got[0].headers['x-key'], 'Value');
    assert.equal(got[0].headers['user-agent'], 'urbis-notifier');
    assert.equal(got[0].headers.host, `127.0.0.1:${s.port}`);
    assert.ok(new Set(got.map((g) => g.socket)).size <= 3, '40 requests, 16 per connection: at most 3 connections');
    // later sends reuse the connections
    await hn.send(row(url, '{"again":1}'));
    assert.ok(s.sockets.size <= 3);
  } finally {
    await hn.close();
    await s.close();
  }
});

test('client: non-2xx is a DeliveryError with the status; responses with bodies (length, chunked) are consumed', async () => {
  let n = 0;
  const s = await listen((_req, res) => {
    const k = n++ % 3;
    if (k === 0) {
      res.statusCode = 500;
      res.end('boom');
    } else if (k === 1) {
      res.statusCode = 200;
      res.write('chunk one');
      res.end('chunk two'); // chunked
    } else {
      res.statusCode = 201;
      res.setHeader('Content-Length', 2);
      res.end('ok');
    }
  });
  const hn = new HttpNotifier({ connections: 1, pipelining: 8 });
  try {
    const url = `http://127.0.0.1:${s.port}/n`;
    const rs = await Promise.allSettled(Array.from({ length: 9 }, (_, i) => hn.send(row(url, `{"i":${i}}`))));
    rs.forEach((r, i) => {
      if (i % 3 === 0) {
        assert.equal(r.status, 'rejected');
        const e = (r as PromiseRejectedResult).reason as DeliveryError;
        assert.ok(e instanceof DeliveryError);
        assert.equal(e.status, 500);
        assert.match(e.message, /HTTP 500 from http:\/\/127\.0\.0\.1:\d+\/n/);
      } else assert.equal(r.status, 'fulfilled', String(i));
    });
    assert.equal(s.sockets.size, 1, 'one connection throughout');
  } finally {
    await hn.close();
    await s.close();
  }
});

test('client: a connection dropped mid-flight fails its requests; the next send opens a new one', async () => {
  let seen = 0;
  const s = await listen((req, res) => {
    if (++seen === 3) {
      req.socket.destroy(); // the third request kills the connection with the rest unanswered
      return;
    }
    if (seen < 3) setTimeout(() => res.end(), 20); // answered, but after the drop: never arrives
    else res.end();
  });
  const hn = new HttpNotifier({ connections: 1, pipelining: 8 });
  try {
    const url = `http://127.0.0.1:${s.port}/n`;
    const rs = await Promise.allSettled(Array.from({ length: 5 }, (_, i) => hn.send(row(url, `{"i":${i}}`))));
    assert.ok(rs.every((r) => r.status === 'rejected'), JSON.stringify(rs.map((r) => r.status)));
    for (const r of rs) assert.ok((r as PromiseRejectedResult).reason instanceof DeliveryError);
    await hn.send(row(url, '{"after":1}'));
  } finally {
    await hn.close();
    await s.close();
  }
});

test('client: Connection: close answers one request, the unanswered pipelined ones go out again', async () => {
  const bodies: string[] = [];
  const s = await listen((_req, res, body) => {
    bodies.push(body);
    res.setHeader('Connection', 'close'); // node:http then ignores what is pipelined behind
    res.statusCode = 204;
    res.end();
  });
  const hn = new HttpNotifier({ connections: 2, pipelining: 8 });
  try {
    const url = `http://127.0.0.1:${s.port}/n`;
    await Promise.all(Array.from({ length: 6 }, (_, i) => hn.send(row(url, `{"i":${i}}`))));
    assert.deepEqual([...new Set(bodies)].sort(), Array.from({ length: 6 }, (_, i) => `{"i":${i}}`));
  } finally {
    await hn.close();
    await s.close();
  }
});

test('client: a response that never comes times out; refused connections and bad endpoints fail', async () => {
  const s = await listen(() => {
    /* never answers */
  });
  const hn = new HttpNotifier({ connections: 1 });
  try {
    const t0 = Date.now();
    await assert.rejects(hn.send(row(`http://127.0.0.1:${s.port}/n`, '{}', { timeoutMs: 300 })), (e: Error) => e instanceof DeliveryError && /timeout/.test(e.message));
    const took = Date.now() - t0;
    assert.ok(took >= 290 && took < 2000, String(took));
    const free = netServer().listen(0);
    await once(free, 'listening');
    const port = (free.address() as AddressInfo).port;
    free.close();
    await assert.rejects(hn.send(row(`http://127.0.0.1:${port}/n`, '{}', { timeoutMs: 2000 })), /ECONNREFUSED/);
    await assert.rejects(hn.send(row('http://exa mple/', '{}')), /invalid endpoint/);
    await assert.rejects(hn.send(row(`http://127.0.0.1:${s.port}/n`, '{}', { headers: { 'X-Bad': 'a\r\nInjected: 1' } })), /invalid notification header/);
  } finally {
    await hn.close();
    await s.close();
  }
});

test('client: an idle connection past the server keep-alive hint is not reused', async () => {
  const s = await listen((_req, res) => {
    res.setHeader('Keep-Alive', 'timeout=1');
    res.statusCode = 204;
    res.end();
  });
  s.srv.keepAliveTimeout = 1000;
  const hn = new HttpNotifier({ connections: 1 });
  try {
    const url = `http://127.0.0.1:${s.port}/n`;
    await hn.send(row(url, '{}'));
    await new Promise((r) => setTimeout(r, 50));
    // hint 1 s, minus the margin: the connection is stale already and a new one is opened
    await hn.send(row(url, '{}'));
    assert.equal(s.sockets.size, 2);
  } finally {
    await hn.close();
    await s.close();
  }
});

test('client: https with certificate verification (a self-signed certificate is refused unless trusted)', async (t) => {
  const { execFileSync } = await import('node:child_process');
  const { mkdtempSync, readFileSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const https = await import('node:https');
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
  } catch {
    t.skip('openssl is not available: cannot make a test certificate');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'urbis-https-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost'], { stdio: 'ignore' });
  const cert = readFileSync(join(dir, 'cert.pem'));
  const key = readFileSync(join(dir, 'key.pem'));
  rmSync(dir, { recursive: true, force: true });
  const bodies: string[] = [];
  const srv = https.createServer({ cert, key }, (req, res) => {
    let b = '';
    req.on('data', (c) => (b += c));
    req.on('end', () => {
      bodies.push(b);
      res.statusCode = 204;
      res.end();
    });
  });
  srv.listen(0); // every address: localhost may resolve to ::1 or 127.0.0.1
  await once(srv, 'listening');
  const url = `https://localhost:${(srv.address() as AddressInfo).port}/n`;
  const trusted = new HttpNotifier({ tls: { ca: cert } });
  const untrusted = new HttpNotifier();
  try {
    await Promise.all(Array.from({ length: 5 }, (_, i) => trusted.send(row(url, `{"i":${i}}`))));
    assert.equal(bodies.length, 5);
    await assert.rejects(untrusted.send(row(url, '{"x":1}')), (e: Error) => e instanceof DeliveryError && /certificate/i.test(e.message));
    assert.equal(bodies.length, 5);
  } finally {
    await trusted.close();
    await untrusted.close();
    srv.closeAllConnections();
    srv.close();
  }
});
