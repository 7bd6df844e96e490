#!/usr/bin/env node
// run.js - s3rver on a free loopback port for cairn's S3 tests, with an
// optional fault-injecting proxy in front of it.
//
//   node run.js --dir DIR [--port N] [--proxy] [--bucket NAME ...]
//               [--key KEY.pem --cert CERT.pem]   (HTTPS instead of HTTP)
//
// Prints one line "READY <s3rver port> <proxy port or 0>" on stdout once
// both listen, then runs until SIGTERM/SIGINT.  Needs
// NODE_OPTIONS=--openssl-legacy-provider (s3rver's continuation tokens use
// DES); tests/s3/s3_harness.h sets it.
//
// The proxy forwards every request to s3rver unchanged (the Host header
// too, so signatures stay valid) unless a fault rule is armed.  Rules are
// armed with a request to the proxy itself:
//
//   GET /__fault?mode=M[&count=N][&method=PUT][&code=503][&s3code=SlowDown]
//               [&retry_after=S][&ms=MS][&header=k:v]
//   GET /__stats   -> {"requests": n, "faulted": n, "connections": n}
//
// modes: none      forward everything (disarm)
//        status    answer `code` with an S3 <Error> of `s3code` (and
//                  Retry-After when given) instead of forwarding
//        stall     read the request, answer nothing for `ms` (default:
//                  forever), then drop the connection
//        reset     drop the connection after part of the request body
//        corrupt   flip one byte of the request body, then forward
//        truncate  forward, but cut the response body in half and drop
//                  the connection
// A rule applies to the next `count` requests (default 1; 0 = all) whose
// method matches `method` (default any); then the proxy forwards again.
'use strict';

const fs = require('fs');
const http = require('http');
const path = require('path');
const { URL } = require('url');

const S3rver = require(path.join(__dirname, 'node_modules', 's3rver'));

function parseArgs(argv) {
  const o = { dir: null, port: 0, proxy: false, buckets: [], key: null, cert: null };
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--dir') o.dir = argv[++i];
    else if (a === '--port') o.port = Number(argv[++i]);
    else if (a === '--proxy') o.proxy = true;
    else if (a === '--bucket') o.buckets.push(argv[++i]);
    else if (a === '--key') o.key = argv[++i];
    else if (a === '--cert') o.cert = argv[++i];
    else {
      console.error(`run.js: unknown argument ${a}`);
      process.exit(2);
    }
  }
  if (!o.dir) {
    console.error('run.js: --dir is required');
    process.exit(2);
  }
  if (!o.buckets.length) o.buckets.push('cairn-test');
  return o;
}

function errorXml(code, message) {
  return (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>' +
    code +
    '</Code><Message>' +
    message +
    '</Message><RequestId>cairn-proxy</RequestId>' +
    (code === 'RequestTimeTooSkewed'
      ? '<ServerTime>' + new Date().toISOString() + '</ServerTime>'
      : '') +
    (code === 'PermanentRedirect' || code === 'AuthorizationHeaderMalformed'
      ? '<Region>eu-west-1</Region><Endpoint>s3.eu-west-1.amazonaws.com</Endpoint>'
      : '') +
    '</Error>'
  );
}

function startProxy(targetPort) {
  let rule = { mode: 'none' };
  const stats = { requests: 0, faulted: 0, connections: 0 };
  const held = new Set();

  const matches = req => {
    if (rule.mode === 'none') return false;
    if (rule.method && rule.method !== req.method) return false;
    if (rule.count === 0) return true;
    if (rule.left <= 0) return false;
    rule.left--;
    return true;
  };

  const server = http.createServer((req, res) => {
    const u = new URL(req.url, 'http://x');
    if (u.pathname === '/__fault') {
      const q = Object.fromEntries(u.searchParams);
      rule = {
        mode: q.mode || 'none',
        count: q.count !== undefined ? Number(q.count) : 1,
        left: q.count !== undefined ? Number(q.count) : 1,
        method: q.method,
        code: Number(q.code || 503),
        s3code: q.s3code || 'SlowDown',
        retryAfter: q.retry_after,
        ms: q.ms !== undefined ? Number(q.ms) : 0,
        header: q.header,
      };
      stats.faulted = 0;
      res.end('ok\n');
      return;
    }
    if (u.pathname === '/__stats') {
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify(stats) + '\n');
      return;
    }
    stats.requests++;
    const fault = matches(req) ? rule : null;
    if (fault) stats.faulted++;
    const mode = fault ? fault.mode : 'none';

    if (mode === 'status') {
      req.resume();
      req.on('end', () => {
        const body = errorXml(fault.s3code, 'injected by the cairn test proxy');
        const h = { 'Content-Type': 'application/xml', 'Content-Length': Buffer.byteLength(body) };
        if (fault.retryAfter !== undefined) h['Retry-After'] = fault.retryAfter;
        if (fault.header) {
          const i = fault.header.indexOf(':');
          h[fault.header.slice(0, i)] = fault.header.slice(i + 1);
        }
        res.writeHead(fault.code, h);
        res.end(req.method === 'HEAD' ? undefined : body);
      });
      return;
    }
    if (mode === 'stall') {
      req.resume();
      held.add(req.socket);
      if (fault.ms > 0)
        setTimeout(() => {
          held.delete(req.socket);
          req.socket.destroy();
        }, fault.ms);
      return;
    }
    if (mode === 'reset') {
      let got = 0;
      req.on('data', c => {
        got += c.length;
        if (got > 1024) req.socket.destroy();
      });
      req.on('end', () => req.socket.destroy());
      return;
    }

    const up = http.request(
      {
        host: '127.0.0.1',
        port: targetPort,
        method: req.method,
        path: req.url,
        headers: req.headers,
      },
      upRes => {
        if (mode === 'truncate') {
          const len = Number(upRes.headers['content-length'] || 0);
          res.writeHead(upRes.statusCode, upRes.headers);
          let sent = 0;
          const half = Math.floor(len / 2);
          upRes.on('data', c => {
            if (sent >= half) return;
            const piece = c.slice(0, half - sent);
            sent += piece.length;
            res.write(piece);
            if (sent >= half) res.socket.destroy();
          });
          upRes.on('end', () => res.socket && res.socket.destroy());
          return;
        }
        res.writeHead(upRes.statusCode, upRes.headers);
        upRes.pipe(res);
      },
    );
    up.on('error', () => res.socket && res.socket.destroy());
    if (mode === 'corrupt') {
      let flipped = false;
      req.on('data', c => {
        if (!flipped && c.length) {
          c = Buffer.from(c);
          c[0] ^= 0xff;
          flipped = true;
        }
        up.write(c);
      });
      req.on('end', () => up.end());
    } else {
      req.pipe(up);
    }
    req.on('aborted', () => up.destroy());
  });
  server.on('connection', () => stats.connections++);
  return new Promise(resolve =>
    server.listen(0, '127.0.0.1', () => resolve(server)),
  );
}

async function main() {
  const o = parseArgs(process.argv);
  const s3 = new S3rver({
    address: '127.0.0.1',
    port: o.port,
    directory: o.dir,
    silent: true,
    configureBuckets: o.buckets.map(name => ({ name, configs: [] })),
    ...(o.key && o.cert
      ? { key: fs.readFileSync(o.key), cert: fs.readFileSync(o.cert) }
      : {}),
  });
  const { port } = await s3.run();
  let pport = 0;
  if (o.proxy) {
    const p = await startProxy(port);
    pport = p.address().port;
  }
  process.stdout.write(`READY ${port} ${pport}\n`);
  const stop = () => {
    s3.close().finally(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch(err => {
  console.error(err);
  process.exit(1);
});
