// Scale-out end to end: three aadgate replicas sharing sessions in a real
// redis-server, behind Debian's nginx balancing round-robin (no ip_hash, no
// sticky sessions), in front of examples/dash-app, used in Chromium while
// replicas are killed (SIGKILL), drained (SIGTERM) and Redis is restarted.
//
// Which replica served what is read from each replica's JSON access log.
//
// Environment: AADGATE_BIN, PYTHON, CHROMIUM, NGINX (default nginx),
// REDIS_SERVER (default redis-server).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import {
  freePort,
  launchChromium,
  newPage,
  nginxConfig,
  start as startIn,
  tearDown,
  waitFor,
} from './processes.mjs';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const APP_DIR = path.join(REPO, 'examples', 'dash-app');
const BIN = process.env.AADGATE_BIN || path.join(REPO, 'target', 'debug', 'aadgate');
const PYTHON = process.env.PYTHON || 'python3';
const NGINX = process.env.NGINX || 'nginx';
const REDIS = process.env.REDIS_SERVER || 'redis-server';
const TENANT = '7e1d5a2c-4b9f-4e63-a8d0-3c5f9b2e1a47';
const CLIENT_SECRET = 'dev-secret-change-me';
const WRITER_OID = '8d2e6b40-7c13-4f95-a1d8-5e3c9b7a2f06';

const start = (name, command, args, env = {}) => startIn(name, command, args, { cwd: REPO, env });

let tmp;
let browser;
let front; // http://127.0.0.1:<nginx port>
let idp;
let redisPort;
let redis;
let replicas = []; // { child, port, config }
const env = {
  AADGATE_OIDC_CLIENT_SECRET: CLIENT_SECRET,
  AADGATE_SESSION_SECRET: randomBytes(32).toString('hex'),
};

/** The example's aadgate.toml with this run's ports, Redis sessions and JSON logs. */
function replicaConfig(port, idpPort, appPort, nginxPort) {
  let text = readFileSync(path.join(APP_DIR, 'aadgate.toml'), 'utf8');
  text = text
    .replace('listen = "127.0.0.1:4180"', `listen = "127.0.0.1:${port}"`)
    .replace('public_url = "http://127.0.0.1:4180"', `public_url = "http://127.0.0.1:${nginxPort}"`)
    .replaceAll('127.0.0.1:4181', `127.0.0.1:${idpPort}`)
    .replace('127.0.0.1:8050', `127.0.0.1:${appPort}`)
    .replace(/^store = .*$/m, `store = "redis://127.0.0.1:${redisPort}"`);
  return `log_format = "json"\ntrusted_proxies = ["127.0.0.1/32"]\n${text}`;
}

function startRedis() {
  return start('redis', REDIS, ['--bind', '127.0.0.1', '--port', String(redisPort), '--save', '', '--appendonly', 'no', '--dir', tmp]);
}

async function ready(port) {
  const r = await fetch(`http://127.0.0.1:${port}/readyz`);
  return r.status === 200;
}

/** The access-log lines (JSON) a replica wrote so far. */
function accessLog(replica) {
  return replica.child.output
    .split('\n')
    .filter(l => l.startsWith('{'))
    .map(l => {
      try {
        return JSON.parse(l);
      } catch {
        return null;
      }
    })
    .filter(l => l && l.message === 'request');
}

/** Indexes of the replicas that logged a request matching `pred`. */
function servedBy(pred) {
  return replicas.flatMap((r, i) => (accessLog(r).some(pred) ? [i] : []));
}

before(async () => {
  tmp = mkdtempSync(path.join(tmpdir(), 'aadgate-replicas-'));
  const [idpPort, appPort, nginxPort, p0, p1, p2, rp] = await Promise.all([1, 2, 3, 4, 5, 6, 7].map(freePort));
  redisPort = rp;
  idp = `http://127.0.0.1:${idpPort}`;
  front = `http://127.0.0.1:${nginxPort}`;
  writeFileSync(path.join(tmp, 'idp.toml'), `redirect_uris = ["${front}/auth/callback"]\n`);
  const idpChild = start('dev-idp', BIN, ['dev-idp', '--listen', `127.0.0.1:${idpPort}`, '--config', path.join(tmp, 'idp.toml')]);
  const app = start('dash-app', PYTHON, [path.join(APP_DIR, 'app.py'), '--port', String(appPort)], {
    // Graph calls (the dashboard's profile card) go to the dev IdP.
    AADGATE_GRAPH_URL: idp,
  });
  redis = startRedis();
  await Promise.all([
    waitFor('the dev IdP answers', idpChild, async () => (await fetch(`${idp}/${TENANT}/v2.0/.well-known/openid-configuration`)).ok),
    waitFor('the app listens', app, () => app.output.includes(`listening on http://127.0.0.1:${appPort}`)),
    waitFor('redis listens', redis, () => redis.output.includes('Ready to accept connections')),
  ]);
  for (const [i, port] of [p0, p1, p2].entries()) {
    const config = path.join(tmp, `aadgate-${i}.toml`);
    writeFileSync(config, replicaConfig(port, idpPort, appPort, nginxPort));
    const child = start(`aadgate-${i}`, BIN, ['proxy', '--config', config], env);
    replicas.push({ child, port, config });
  }
  await Promise.all(replicas.map(r => waitFor(`replica :${r.port} is ready`, r.child, () => ready(r.port))));

  const nginxConf = path.join(tmp, 'nginx.conf');
  writeFileSync(
    nginxConf,
    nginxConfig(
      tmp,
      `  # Round-robin, no ip_hash, no keep-alive: consecutive requests land on
  # different replicas. A replica that refuses connections is skipped.
  upstream aadgate {
    ${replicas.map(r => `server 127.0.0.1:${r.port} max_fails=0;`).join('\n    ')}
  }
  server {
    listen 127.0.0.1:${nginxPort};
    location / {
      proxy_pass http://aadgate;
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_next_upstream error timeout;
    }
  }
`,
    ),
  );
  const nginx = start('nginx', NGINX, ['-c', nginxConf, '-p', tmp]);
  await waitFor('nginx forwards', nginx, async () => (await fetch(`${front}/healthz`)).ok);

  browser = await launchChromium();
});

after(() => tearDown(browser, tmp));

async function chartValues(page) {
  await page.locator('#sales-chart .main-svg .trace.bars .point').first().waitFor();
  return page.evaluate(() => Array.from(document.querySelector('#sales-chart .js-plotly-plot').data[0].y));
}

/** Picks a region; the chart's callback must succeed (through whichever replica). */
async function chooseRegion(page, region) {
  const [response] = await Promise.all([
    page.waitForResponse(
      r => new URL(r.url()).pathname.endsWith('/_dash-update-component') && r.request().method() === 'POST',
    ),
    (async () => {
      await page.locator('#region').click();
      await page.getByRole('option', { name: region, exact: true }).click();
    })(),
  ]);
  assert.equal(response.status(), 200, `the ${region} callback`);
}

test('three replicas behind round-robin nginx: sign-in, the dashboard, a kill, a drain, revocation and Redis restarting', async () => {
  const { context, page } = await newPage(browser);
  try {
    // Sign in: the sign-in starts on one replica and completes on another.
    await page.goto(`${front}/dash/`);
    await page.waitForURL(u => u.href.startsWith(`${idp}/${TENANT}/oauth2/v2.0/authorize`));
    await page.locator('button.account[name="login_hint"][value="writer"]').click();
    await page.waitForURL(`${front}/dash/`);
    await page.locator('#navbar-user', { hasText: 'Walt Writer' }).waitFor();
    const login = servedBy(l => l.path === '/auth/login');
    const callback = servedBy(l => l.path === '/auth/callback' && l.status === 302);
    assert.equal(login.length, 1, `login served by ${login}`);
    assert.equal(callback.length, 1, `callback served by ${callback}`);
    assert.notEqual(login[0], callback[0], 'round-robin put sign-in start and finish on different replicas');

    // The dashboard works while its requests spread over every replica.
    const before = await chartValues(page);
    assert.ok(before.length >= 12);
    for (const region of ['South', 'North', 'East']) await chooseRegion(page, region);
    const signedIn = servedBy(l => l.user === WRITER_OID && l.status === 200);
    assert.deepEqual(signedIn, [0, 1, 2], 'every replica served the signed-in user');

    // One replica killed outright: nginx skips it; nothing is lost.
    replicas[0].child.kill('SIGKILL');
    await replicas[0].child.exited;
    await chooseRegion(page, 'West');
    await page.reload();
    await page.locator('#navbar-user', { hasText: 'Walt Writer' }).waitFor();
    await chartValues(page);

    // One drained (SIGTERM): it finishes and exits 0; the last one serves on.
    replicas[1].child.kill('SIGTERM');
    assert.equal(await replicas[1].child.exited, 0);
    await chooseRegion(page, 'South');
    const me = await page.evaluate(async () => (await fetch('/auth/me')).status);
    assert.equal(me, 200);

    // Revocation from the command line reaches the serving replica within 1 s.
    const revokedAt = Date.now();
    await promisify(execFile)(BIN, ['sessions', 'revoke', '--config', replicas[2].config, '--user', WRITER_OID], { env: { ...process.env, ...env } });
    await waitFor('the revoked session is refused', null, async () =>
      (await page.evaluate(async () => (await fetch('/auth/me')).status)) === 401,
    5000);
    assert.ok(Date.now() - revokedAt < 1500, `revocation took ${Date.now() - revokedAt} ms`);

    // The page's own script saw the 401 and sent the user to sign in again.
    await page.waitForURL(u => u.href.startsWith(`${idp}/`));
    const account = page.locator('button.account[name="login_hint"][value="writer"]');
    if (await account.count()) await account.click();
    await page.waitForURL(`${front}/dash/`);
    await page.locator('#navbar-user', { hasText: 'Walt Writer' }).waitFor();

    // Redis goes away. The session this replica holds in memory keeps
    // working; a sign-in, which must be shared, gets a clear 503 (never a 500
    // or a sign-in loop); /readyz says so.
    redis.kill('SIGTERM');
    await redis.exited;
    await chooseRegion(page, 'East');
    const other = await browser.newContext();
    try {
      const fresh = await other.newPage();
      await fresh.goto(`${front}/dash/`);
      await fresh.waitForURL(u => u.href.startsWith(`${idp}/`));
      const [callback] = await Promise.all([
        fresh.waitForResponse(r => new URL(r.url()).pathname === '/auth/callback'),
        fresh.locator('button.account[name="login_hint"][value="reader"]').click(),
      ]);
      assert.equal(callback.status(), 503);
      assert.match(await fresh.content(), /unavailable/i);
      assert.equal((await fetch(`http://127.0.0.1:${replicas[2].port}/readyz`)).status, 503);

      // Redis back, empty (no persistence): service resumes by itself; the
      // lost session means signing in again, not an error.
      redis = startRedis();
      await waitFor('the replica is ready again', replicas[2].child, () => ready(replicas[2].port));
      await fresh.goto(`${front}/dash/`);
      await fresh.waitForURL(u => u.href.startsWith(`${idp}/`));
      await fresh.locator('button.account[name="login_hint"][value="reader"]').click();
      await fresh.waitForURL(`${front}/dash/`);
      await fresh.locator('#navbar-user', { hasText: 'Rita Reader' }).waitFor();
    } finally {
      await other.close();
    }
    const back = await page.goto(`${front}/dash/`);
    assert.notEqual(back?.status(), 500);
    await page.waitForURL(u => u.href.startsWith(`${idp}/`));
  } finally {
    await context.close();
  }
});
