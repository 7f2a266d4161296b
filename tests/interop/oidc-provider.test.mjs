// aadgate against an OpenID provider written by someone else: `oidc-provider`
// (OpenID Certified), configured with an Entra-like `roles` claim
// (provider.mjs). aadgate runs as the real binary in front of a tiny echo app;
// a small cookie-jar "browser" drives sign-in, role rules, refresh and logout
// with plain HTTP.
//
//   cd tests/interop && npm ci && node --test
//
// The binary is target/debug/aadgate (build: cargo build -p aadgate-cli), or
// $AADGATE_BIN. On a failure the test's error carries the tail of aadgate's
// log (AADGATE_LOG=debug); the whole log's path is printed too.

import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync, createWriteStream } from 'node:fs';
import { createServer, request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { ACCOUNTS, startProvider } from './provider.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const AADGATE_BIN = process.env.AADGATE_BIN || resolve(here, '../../target/debug/aadgate');
const START_TIMEOUT_MS = 30_000;

// ---------------------------------------------------------------- plumbing

/** Polls `check` (truthy = done) until `timeoutMs`; never a fixed sleep. */
async function waitFor(what, check, timeoutMs = START_TIMEOUT_MS) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      if (await check()) return;
    } catch (e) {
      if (e.fatal) throw e;
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last.message}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A free loopback port (aadgate's must be known before its config is written). */
function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

/** One HTTP request, no redirects followed, no connection reuse. */
function rawRequest(method, url, { headers = {}, body } = {}) {
  return new Promise((res, rej) => {
    const u = new URL(url);
    const req = httpRequest(
      {
        method,
        host: u.hostname,
        port: u.port,
        path: u.pathname + u.search,
        headers: body === undefined ? headers : { ...headers, 'content-length': Buffer.byteLength(body) },
        agent: false,
      },
      (resp) => {
        const chunks = [];
        resp.on('data', (c) => chunks.push(c));
        resp.on('end', () =>
          res({ url, method, status: resp.statusCode, headers: resp.headers, body: Buffer.concat(chunks).toString('utf8') }),
        );
        resp.on('error', rej);
      },
    );
    req.setTimeout(15_000, () => req.destroy(new Error(`${method} ${url}: no answer in 15 s`)));
    req.on('error', rej);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

function decodeEntities(s) {
  return s
    .replace(/&quot;/g, '"')
    .replace(/&#39;|&#x27;/g, "'")
    .replace(/&#x2F;|&#47;/g, '/')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}

function attrs(tag) {
  const out = {};
  for (const m of tag.matchAll(/([a-zA-Z_:.-]+)\s*=\s*("([^"]*)"|'([^']*)')/g)) {
    out[m[1].toLowerCase()] = decodeEntities(m[3] ?? m[4]);
  }
  return out;
}

/** The first form of an HTML page: action, method and its hidden fields. */
function parseForm(html, baseUrl) {
  const m = html.match(/<form\b[^>]*>/i);
  assert.ok(m, `no <form> in the page at ${baseUrl}:\n${html.slice(0, 2000)}`);
  const form = attrs(m[0]);
  const end = html.indexOf('</form>', m.index);
  const inner = html.slice(m.index, end === -1 ? undefined : end);
  const fields = {};
  for (const input of inner.matchAll(/<input\b[^>]*>/gi)) {
    const a = attrs(input[0]);
    if (a.type === 'hidden' && a.name) fields[a.name] = a.value ?? '';
  }
  return {
    action: new URL(form.action ?? '', baseUrl).href,
    method: (form.method ?? 'get').toUpperCase(),
    fields,
  };
}

/**
 * A browser as far as these flows need one: a cookie jar that behaves like a
 * real one on 127.0.0.1 (cookies are per host, not per port, so the
 * provider's and aadgate's cookies share it), navigation headers, and
 * redirects followed hop by hop with every hop recorded.
 */
class Browser {
  constructor(label) {
    this.label = label;
    /** @type {Map<string, {value: string, path: string, expires: number}>} keyed by `host|path|name` */
    this.jar = new Map();
  }

  cookieHeader(url) {
    const u = new URL(url);
    const now = Date.now();
    const pairs = [];
    for (const [key, c] of this.jar) {
      const [host, , name] = key.split('|');
      if (c.expires <= now) {
        this.jar.delete(key);
        continue;
      }
      const p = c.path;
      const pathOk = u.pathname === p || u.pathname.startsWith(p.endsWith('/') ? p : `${p}/`);
      if (host === u.hostname && pathOk) pairs.push([p.length, `${name}=${c.value}`]);
    }
    // Longer paths first, as browsers send them.
    return pairs.sort((a, b) => b[0] - a[0]).map(([, s]) => s).join('; ');
  }

  store(url, setCookie) {
    const u = new URL(url);
    for (const line of setCookie ?? []) {
      const [pair, ...attrParts] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      let path = u.pathname.replace(/\/[^/]*$/, '') || '/';
      let expires = Infinity;
      for (const a of attrParts) {
        const [k, ...v] = a.trim().split('=');
        const val = v.join('=');
        switch (k.toLowerCase()) {
          case 'path':
            if (val.startsWith('/')) path = val;
            break;
          case 'max-age':
            expires = Date.now() + Number(val) * 1000;
            break;
          case 'expires':
            if (expires === Infinity) expires = Date.parse(val);
            break;
          default:
        }
      }
      const key = `${u.hostname}|${path}|${name}`;
      if (expires <= Date.now()) this.jar.delete(key);
      else this.jar.set(key, { value, path, expires });
    }
  }

  /** The value of cookie `name` as it would be sent to `url`. */
  cookie(url, name) {
    for (const part of this.cookieHeader(url).split('; ')) {
      if (part.startsWith(`${name}=`)) return part.slice(name.length + 1);
    }
    return undefined;
  }

  /** One request, as a top-level navigation (or a form submission). */
  async fetch(url, { method = 'GET', form, headers = {} } = {}) {
    const h = {
      accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8',
      'sec-fetch-mode': 'navigate',
      'user-agent': `aadgate-interop/${this.label}`,
      ...headers,
    };
    const cookie = this.cookieHeader(url);
    if (cookie) h.cookie = cookie;
    let body;
    if (form) {
      body = new URLSearchParams(form).toString();
      h['content-type'] = 'application/x-www-form-urlencoded';
      h.origin = new URL(url).origin;
    }
    const r = await rawRequest(method, url, { headers: h, body });
    const sc = r.headers['set-cookie'];
    this.store(url, Array.isArray(sc) ? sc : sc ? [sc] : []);
    r.location = r.headers.location ? new URL(r.headers.location, url).href : undefined;
    return r;
  }

  /** Follows redirects from a first request; returns every hop, the last being no redirect. */
  async navigate(url, opts = {}) {
    const hops = [];
    let r = await this.fetch(url, opts);
    hops.push(r);
    while ([301, 302, 303, 307, 308].includes(r.status)) {
      assert.ok(hops.length < 20, `redirect loop: ${hops.map((h) => h.url).join(' -> ')}`);
      assert.ok(r.location, `${r.status} without Location at ${r.url}`);
      const keep = r.status === 307 || r.status === 308;
      r = await this.fetch(r.location, keep ? opts : {});
      hops.push(r);
    }
    return hops;
  }

  /** Submits the page's first form, with `extra` fields added. */
  async submit(page, extra = {}) {
    const f = parseForm(page.body, page.url);
    assert.equal(f.method, 'POST', `form at ${page.url} is not a POST`);
    return this.navigate(f.action, { method: 'POST', form: { ...f.fields, ...extra } });
  }
}

const last = (hops) => hops[hops.length - 1];
const trail = (hops) => hops.map((h) => `${h.method} ${h.url} -> ${h.status}`).join('\n  ');

function decodeJwt(jwt) {
  const [h, p] = jwt.split('.');
  const dec = (s) => JSON.parse(Buffer.from(s, 'base64url').toString('utf8'));
  return { header: dec(h), payload: dec(p) };
}

// ---------------------------------------------------------------- the setup

const env = {};
const children = [];

function killChildren() {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}
process.on('exit', killChildren);

/** The echo app: answers every request with its method, path and headers as JSON. */
async function startEcho() {
  const seen = [];
  const server = createServer((req, res) => {
    const entry = { method: req.method, path: req.url, headers: req.headers };
    seen.push(entry);
    const body = JSON.stringify(entry);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${server.address().port}`, seen, server };
}

async function startAadgate({ proxyPort, upstream, issuer, clientId, clientSecret, dir }) {
  assert.ok(
    existsSync(AADGATE_BIN),
    `${AADGATE_BIN} is missing: build it (cargo build -p aadgate-cli) or set AADGATE_BIN`,
  );
  const config = join(dir, 'aadgate.toml');
  writeFileSync(
    config,
    `listen = "127.0.0.1:${proxyPort}"
public_url = "http://127.0.0.1:${proxyPort}"
upstream = "${upstream}"
pass_access_token = true

[oidc]
issuer = "${issuer}"
client_id = "${clientId}"
scopes = ["openid", "profile", "email", "offline_access"]

[session]
store = "memory"

[authz]
roles = ["App.Read", "App.Write", "App.Admin"]

[[route]]
path = "/admin"
role = "App.Admin"
`,
  );
  const logPath = join(dir, 'aadgate.log');
  const logFile = createWriteStream(logPath);
  const log = [];
  const child = spawn(AADGATE_BIN, ['proxy', '--config', config], {
    env: {
      ...process.env,
      AADGATE_OIDC_CLIENT_SECRET: clientSecret,
      AADGATE_SESSION_SECRET: randomBytes(32).toString('hex'),
      AADGATE_LOG: process.env.AADGATE_LOG || 'debug',
      NO_COLOR: '1',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let partial = '';
  const onData = (d) => {
    logFile.write(d);
    const lines = (partial + d.toString('utf8')).split('\n');
    partial = lines.pop();
    log.push(...lines);
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const exited = new Promise((r) => child.once('exit', (code, signal) => r({ code, signal })));

  const url = `http://127.0.0.1:${proxyPort}`;
  await waitFor('aadgate /healthz', async () => {
    if (child.exitCode !== null) {
      throw Object.assign(new Error(`aadgate exited with ${child.exitCode}:\n${log.join('\n')}`), { fatal: true });
    }
    const r = await rawRequest('GET', `${url}/healthz`).catch(() => undefined);
    return r?.status === 200 && r.body.trim() === 'ok';
  }).catch((e) => {
    throw new Error(`aadgate did not start: ${e.message}\n${log.join('\n')}`);
  });
  return {
    url,
    child,
    log,
    logPath,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
      await new Promise((r) => logFile.end(r));
    },
  };
}

before(async () => {
  env.dir = mkdtempSync(join(tmpdir(), 'aadgate-interop-'));
  env.echo = await startEcho();
  const proxyPort = await freePort();
  env.op = await startProvider({ proxyPort, accessTokenTtl: 30 });
  // What the token endpoint answered (no token values): evidence on failures.
  env.grants = [];
  env.op.provider.on('grant.success', (ctx) => {
    const { body } = ctx;
    env.grants.push({
      grant_type: ctx.oidc.params?.grant_type,
      sub: ctx.oidc.account?.accountId ?? ctx.oidc.entities?.Account?.accountId,
      scope: body?.scope,
      refresh_token: Boolean(body?.refresh_token),
      id_token: Boolean(body?.id_token),
      expires_in: body?.expires_in,
    });
  });
  env.providerErrors = [];
  for (const ev of ['server_error', 'grant.error', 'authorization.error', 'end_session.error', 'userinfo.error']) {
    env.op.provider.on(ev, (_ctx, err) => env.providerErrors.push(`${ev}: ${err?.name} ${err?.message} ${err?.error_description ?? ''}`));
  }
  const discovery = await rawRequest('GET', `${env.op.issuer}/.well-known/openid-configuration`);
  env.meta = JSON.parse(discovery.body);
  env.gate = await startAadgate({
    proxyPort,
    upstream: env.echo.url,
    issuer: env.op.issuer,
    clientId: env.op.clientId,
    clientSecret: env.op.clientSecret,
    dir: env.dir,
  });
});

after(async () => {
  await env.gate?.stop();
  await env.op?.close();
  await new Promise((r) => (env.echo ? env.echo.server.close(r) : r()));
  killChildren();
  if (env.failed) {
    console.error(`aadgate's full log is kept at ${env.gate?.logPath}`);
  } else if (env.dir) {
    rmSync(env.dir, { recursive: true, force: true });
  }
});

/** Wraps a test body: on failure, adds aadgate's log tail and the provider's errors. */
function withLogs(fn) {
  return async (t) => {
    const from = env.gate?.log.length ?? 0;
    const errorsFrom = env.providerErrors?.length ?? 0;
    const grantsFrom = env.grants?.length ?? 0;
    try {
      await fn(t);
    } catch (e) {
      env.failed = true;
      // hyper's connection-pool chatter left out; the full log is in the file.
      const lines = (env.gate?.log ?? []).slice(Math.max(0, from - 5)).filter((l) => !/idle connection/.test(l)).slice(-120);
      e.message += `\n--- aadgate log during this test (${env.gate?.logPath}) ---\n${lines.join('\n')}`;
      const errors = (env.providerErrors ?? []).slice(errorsFrom);
      if (errors.length) e.message += `\n--- oidc-provider errors during this test ---\n${errors.join('\n')}`;
      const grants = (env.grants ?? []).slice(grantsFrom).map((g) => JSON.stringify(g));
      if (grants.length) e.message += `\n--- oidc-provider token responses during this test (no token values) ---\n${grants.join('\n')}`;
      throw e;
    }
  };
}

// ---------------------------------------------------------------- sign-in

/**
 * Signs `user` in starting at `path`: the first request gets 302 to
 * /auth/login, aadgate sends the browser to the provider, the provider's login
 * form is filled in, the provider returns to /auth/callback, and aadgate
 * sends the browser back to `path`. Returns every hop and the final page.
 */
async function signIn(browser, user, path = '/') {
  const proxy = env.gate.url;
  const first = await browser.fetch(`${proxy}${path}`);
  assert.equal(first.status, 302, `unauthenticated ${path} should redirect to sign-in`);
  const login = new URL(first.location);
  assert.equal(login.origin, proxy);
  assert.equal(login.pathname, '/auth/login');
  assert.equal(login.searchParams.get('rd'), path);
  assert.equal(login.search, `?rd=${encodeURIComponent(path)}`);

  const toForm = await browser.navigate(login.href);
  const authz = toForm.find((h) => h.url.startsWith(env.meta.authorization_endpoint));
  assert.ok(authz, `aadgate did not send the browser to the provider:\n  ${trail(toForm)}`);
  const a = new URL(authz.url).searchParams;
  assert.equal(a.get('client_id'), env.op.clientId);
  assert.equal(a.get('response_type'), 'code');
  assert.equal(a.get('redirect_uri'), `${proxy}/auth/callback`);
  assert.equal(a.get('code_challenge_method'), 'S256');
  assert.match(a.get('code_challenge') ?? '', /^[A-Za-z0-9_-]{43}$/);
  assert.ok(a.get('state') && a.get('nonce'), 'state and nonce are sent');
  assert.deepEqual(a.get('scope').split(' ').sort(), ['email', 'offline_access', 'openid', 'profile']);

  const form = last(toForm);
  assert.equal(form.status, 200, `expected the provider's login form:\n  ${trail(toForm)}\n${form.body.slice(0, 2000)}`);
  assert.ok(form.url.startsWith(`${env.op.issuer}/interaction/`), `login form at ${form.url}`);

  const back = await browser.submit(form, { login: user, password: 'any password' });
  const callback = back.find((h) => h.url.startsWith(`${proxy}/auth/callback?`));
  assert.ok(callback, `the provider did not return to the callback:\n  ${trail(back)}\n${last(back).body.slice(0, 2000)}`);
  const cb = new URL(callback.url).searchParams;
  assert.ok(cb.get('code'), 'callback carries a code');
  assert.equal(cb.get('state'), a.get('state'));
  assert.equal(cb.get('iss'), env.op.issuer, 'RFC 9207 iss in the authorization response');
  assert.equal(
    callback.status,
    302,
    `aadgate refused the callback (${callback.status}):\n${callback.body.slice(0, 2000)}`,
  );
  assert.equal(callback.location, `${proxy}${path}`, 'callback returns to the page first asked for');
  assert.ok(browser.cookie(proxy, 'aadgate'), 'session cookie set');
  return { first, toForm, back, callback, page: last(back) };
}

function echoed(page) {
  assert.equal(page.status, 200, `expected the app's answer, got ${page.status}:\n${page.body.slice(0, 2000)}`);
  return JSON.parse(page.body);
}

// ---------------------------------------------------------------- the tests

test('sign-in as reader: identity headers reach the app', withLogs(async () => {
  const b = new Browser('reader');
  const { page } = await signIn(b, 'reader', '/');
  const seen = echoed(page);
  assert.equal(seen.path, '/');
  const h = seen.headers;
  assert.equal(h['x-forwarded-user'], 'reader', 'X-Forwarded-User is the sub');
  assert.equal(h['x-forwarded-roles'], 'App.Read');
  assert.equal(h['x-forwarded-email'], ACCOUNTS.reader.email);
  assert.equal(h['x-forwarded-preferred-username'], ACCOUNTS.reader.email);
  assert.equal(h['x-forwarded-name'], ACCOUNTS.reader.name);
  assert.ok(!/(^|;\s*)aadgate(_login)?=/.test(h.cookie ?? ''), "aadgate's cookies are not forwarded");

  // The ID token aadgate accepted: RS256, and the Entra-like roles claim is in it.
  const me = await b.fetch(`${env.gate.url}/.auth/me`, { headers: { accept: 'application/json', 'sec-fetch-mode': 'cors' } });
  assert.equal(me.status, 200, me.body);
  const [entry] = JSON.parse(me.body);
  const idt = decodeJwt(entry.id_token);
  assert.equal(idt.header.alg, 'RS256');
  assert.ok(idt.header.kid);
  assert.equal(idt.payload.iss, env.op.issuer);
  assert.equal(idt.payload.aud, env.op.clientId);
  assert.equal(idt.payload.sub, 'reader');
  assert.deepEqual(idt.payload.roles, ['App.Read']);
  assert.equal(idt.payload.name, ACCOUNTS.reader.name);
  assert.equal(idt.payload.email, ACCOUNTS.reader.email);

  const authMe = await b.fetch(`${env.gate.url}/auth/me`, { headers: { accept: 'application/json', 'sec-fetch-mode': 'cors' } });
  assert.equal(authMe.status, 200, authMe.body);
  const who = JSON.parse(authMe.body);
  assert.equal(who.sub, 'reader');
  assert.deepEqual(who.roles, ['App.Read']);
}));

test('role rules: reader and writer are refused /admin, admin is let in, norole is refused everywhere', withLogs(async () => {
  const proxy = env.gate.url;

  const reader = new Browser('reader');
  await signIn(reader, 'reader', '/');
  assert.equal((await reader.fetch(`${proxy}/admin`)).status, 403, 'reader on /admin');
  assert.equal((await reader.fetch(`${proxy}/admin/users`)).status, 403, 'reader on /admin/users');
  assert.equal(echoed(await reader.fetch(`${proxy}/reports`)).headers['x-forwarded-user'], 'reader');

  const writer = new Browser('writer');
  const w = echoed((await signIn(writer, 'writer', '/')).page).headers;
  assert.equal(w['x-forwarded-roles'], 'App.Read,App.Write', 'a higher role implies the lower ones');
  assert.equal(w['x-forwarded-name'], ACCOUNTS.writer.name);
  assert.equal((await writer.fetch(`${proxy}/admin`)).status, 403, 'writer on /admin');

  const admin = new Browser('admin');
  const { page } = await signIn(admin, 'admin', '/admin');
  const a = echoed(page);
  assert.equal(a.path, '/admin');
  assert.equal(a.headers['x-forwarded-user'], 'admin');
  assert.equal(a.headers['x-forwarded-roles'], 'App.Read,App.Write,App.Admin');
  assert.equal(echoed(await admin.fetch(`${proxy}/admin/users`)).path, '/admin/users');
  assert.equal(echoed(await admin.fetch(`${proxy}/`)).headers['x-forwarded-user'], 'admin');

  // norole signs in successfully at the provider (no roles claim at all), and
  // aadgate refuses every page.
  const norole = new Browser('norole');
  const n = await signIn(norole, 'norole', '/');
  assert.equal(n.page.status, 403, `norole on / after sign-in: ${n.page.status}`);
  for (const path of ['/', '/admin', '/reports']) {
    const r = await norole.fetch(`${proxy}${path}`);
    assert.equal(r.status, 403, `norole on ${path}: ${r.status}`);
  }
  const api = await norole.fetch(`${proxy}/api/data`, { headers: { accept: 'application/json', 'sec-fetch-mode': 'cors' } });
  assert.equal(api.status, 403);
  assert.ok(
    !env.echo.seen.some((e) => e.headers['x-forwarded-user'] === 'norole'),
    'the app never saw a request from norole',
  );
}));

test('refresh: each forwarded request refreshes the 30-second access token and the session stays valid', withLogs(async () => {
  const proxy = env.gate.url;
  const b = new Browser('refresh');
  const mark = env.grants.length;
  const { page } = await signIn(b, 'writer', '/');
  // The provider's side first: the code was exchanged for a 30-second access
  // token and a refresh token (so a failure below is aadgate's).
  const exchange = env.grants.slice(mark).find((g) => g.grant_type === 'authorization_code');
  assert.ok(exchange, 'the provider saw the code exchange');
  assert.equal(exchange.refresh_token, true, `the provider issued a refresh token: ${JSON.stringify(exchange)}`);
  assert.equal(exchange.expires_in, 30);

  // aadgate refreshes tokens that expire within 60 s whenever it forwards
  // one, so every request below makes one refresh, each with the refresh
  // token the one before got (oidc-provider rotates them at every use and
  // revokes the whole grant if a used one comes back).
  const tokens = [echoed(page).headers['x-forwarded-access-token']];
  for (let i = 0; i < 3; i += 1) {
    const h = echoed(await b.fetch(`${proxy}/page-${i}`)).headers;
    assert.equal(h['x-forwarded-user'], 'writer', `request ${i}: still signed in`);
    assert.equal(h['x-forwarded-roles'], 'App.Read,App.Write', `request ${i}: roles kept after refresh`);
    tokens.push(h['x-forwarded-access-token']);
  }
  const refreshes = env.grants.slice(mark).filter((g) => g.grant_type === 'refresh_token');
  assert.ok(
    tokens.every(Boolean),
    `every request carries an access token; got ${tokens.map((t) => (t ? 'a token' : 'none')).join(', ')}; ` +
      `the provider answered ${refreshes.length} refresh requests`,
  );
  assert.equal(new Set(tokens).size, tokens.length, `consecutive requests carry different access tokens: ${tokens.map((t) => t.slice(0, 8)).join(', ')}`);
  assert.ok(refreshes.length >= 4, `provider answered ${refreshes.length} refresh requests`);
  assert.ok(refreshes.every((g) => g.refresh_token && g.id_token), 'each refresh returned a rotated refresh token and an ID token');

  // The newest forwarded token is a live access token at the provider.
  const ui = await rawRequest('GET', env.meta.userinfo_endpoint, { headers: { authorization: `Bearer ${tokens.at(-1)}` } });
  assert.equal(ui.status, 200, `userinfo with the forwarded token: ${ui.status} ${ui.body}`);
  assert.equal(JSON.parse(ui.body).sub, 'writer');

  const me = await b.fetch(`${proxy}/auth/me`, { headers: { accept: 'application/json', 'sec-fetch-mode': 'cors' } });
  assert.equal(me.status, 200, 'session still valid after the refreshes');
  assert.deepEqual(JSON.parse(me.body).roles, ['App.Read', 'App.Write']);
}));

test('logout: RP-initiated logout at the provider, back to /auth/signed-out, then signed out', withLogs(async () => {
  const proxy = env.gate.url;
  const b = new Browser('logout');
  await signIn(b, 'writer', '/');
  const oldSession = b.cookie(proxy, 'aadgate');
  assert.ok(oldSession);

  // The sign-out button's form: a same-origin POST (a cross-site GET only gets that page).
  const out = await b.fetch(`${proxy}/auth/logout`, { method: 'POST', headers: { origin: proxy } });
  assert.equal(out.status, 302);
  const end = new URL(out.location);
  assert.equal(`${end.origin}${end.pathname}`, env.meta.end_session_endpoint, 'to the provider end_session_endpoint');
  assert.equal(end.searchParams.get('post_logout_redirect_uri'), `${proxy}/auth/signed-out`);
  const hint = end.searchParams.get('id_token_hint');
  assert.ok(hint, 'id_token_hint is sent');
  const hintClaims = decodeJwt(hint).payload;
  assert.equal(hintClaims.sub, 'writer');
  assert.equal(hintClaims.aud, env.op.clientId);
  assert.equal(hintClaims.iss, env.op.issuer);
  assert.equal(b.cookie(proxy, 'aadgate'), undefined, 'session cookie cleared');

  // The provider asks whether to sign out; say yes.
  const confirm = await b.navigate(out.location);
  const ask = last(confirm);
  assert.equal(ask.status, 200, `provider logout page:\n  ${trail(confirm)}\n${ask.body.slice(0, 2000)}`);
  assert.match(ask.body, /sign-out/i);
  const done = await b.submit(ask, { logout: 'yes' });
  const signedOut = last(done);
  assert.ok(
    signedOut.url.startsWith(`${proxy}/auth/signed-out`),
    `the provider did not return to /auth/signed-out:\n  ${trail(done)}\n${signedOut.body.slice(0, 2000)}`,
  );
  assert.equal(signedOut.status, 200);
  assert.match(signedOut.body, /signed out/i);

  // Signed out here: a 302 to sign-in, also when the old cookie is replayed.
  const again = await b.fetch(`${proxy}/`);
  assert.equal(again.status, 302);
  assert.equal(new URL(again.location).pathname, '/auth/login');
  assert.equal(new URL(again.location).searchParams.get('rd'), '/');
  const replay = await rawRequest('GET', `${proxy}/`, {
    headers: { cookie: `aadgate=${oldSession}`, accept: 'text/html', 'sec-fetch-mode': 'navigate' },
  });
  assert.equal(replay.status, 302, 'the old session id is dead server-side');
  const xhr = await rawRequest('GET', `${proxy}/`, { headers: { cookie: `aadgate=${oldSession}`, accept: 'application/json' } });
  assert.equal(xhr.status, 401);
  assert.equal(JSON.parse(xhr.body).error, 'login_required');

  // And signed out at the provider: signing in again shows its login form.
  const relogin = await b.navigate(again.location);
  assert.ok(
    last(relogin).url.startsWith(`${env.op.issuer}/interaction/`) && /name="login"/.test(last(relogin).body),
    `expected the provider's login form after logout:\n  ${trail(relogin)}`,
  );
}));
