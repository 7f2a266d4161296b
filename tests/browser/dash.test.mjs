// examples/dash-app behind aadgate, signing in at aadgate's dev IdP, driven
// in a real browser (Debian's chromium through playwright-core).
//
//   cargo build -p aadgate-cli
//   pip install -r examples/dash-app/requirements.txt
//   cd tests/browser && npm ci && npm test
//
// Environment: AADGATE_BIN (default <repo>/target/debug/aadgate), PYTHON
// (default python3), CHROMIUM (default /usr/bin/chromium), AADGATE_SCREENSHOTS
// (default <repo>/test-artifacts/screenshots).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { freePort, launchChromium, newPage as openPage, start as startIn, tearDown, waitFor } from './processes.mjs';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const APP_DIR = path.join(REPO, 'examples', 'dash-app');
const BIN = process.env.AADGATE_BIN || path.join(REPO, 'target', 'debug', 'aadgate');
const PYTHON = process.env.PYTHON || 'python3';
const SHOTS = path.resolve(REPO, process.env.AADGATE_SCREENSHOTS || 'test-artifacts/screenshots');

// The dev IdP's built-in tenant, client and secret (crates/dev-idp/src/config.rs).
const TENANT = '7e1d5a2c-4b9f-4e63-a8d0-3c5f9b2e1a47';
const CLIENT_SECRET = 'dev-secret-change-me';

let tmp;
let browser;
let proxy; // http://127.0.0.1:<port>
let idp; // http://127.0.0.1:<port>

// ---------------------------------------------------------------- processes

/** Starts a child whose output goes to <tmp>/<name>.log (and is kept for failure messages). */
const start = (name, command, args, env = {}) =>
  startIn(name, command, args, {
    cwd: REPO,
    env: { RUST_LOG: process.env.RUST_LOG || 'info', ...env },
    log: path.join(tmp, `${name}.log`),
  });

async function httpOk(url) {
  const response = await fetch(url, { redirect: 'manual', signal: AbortSignal.timeout(2000) });
  return response.ok;
}

/** The example's own aadgate.toml, with this run's ports and an in-memory session store. */
function proxyConfig(proxyPort, idpPort, appPort) {
  let text = readFileSync(path.join(APP_DIR, 'aadgate.toml'), 'utf8');
  const replace = (from, to) => {
    assert.ok(text.includes(from), `examples/dash-app/aadgate.toml no longer contains ${from}`);
    text = text.replaceAll(from, to);
  };
  replace('127.0.0.1:4180', `127.0.0.1:${proxyPort}`);
  replace('127.0.0.1:4181', `127.0.0.1:${idpPort}`);
  replace('127.0.0.1:8050', `127.0.0.1:${appPort}`);
  text = text.replace(/^store = .*$/m, 'store = "memory"');
  return text;
}

before(async () => {
  tmp = mkdtempSync(path.join(tmpdir(), 'aadgate-dash-'));
  mkdirSync(SHOTS, { recursive: true });
  const [idpPort, appPort, proxyPort] = [await freePort(), await freePort(), await freePort()];
  idp = `http://127.0.0.1:${idpPort}`;
  proxy = `http://127.0.0.1:${proxyPort}`;

  const idpToml = path.join(tmp, 'idp.toml');
  writeFileSync(idpToml, `redirect_uris = ["${proxy}/auth/callback"]\n`);
  const idpChild = start('dev-idp', BIN, ['dev-idp', '--listen', `127.0.0.1:${idpPort}`, '--config', idpToml]);

  const app = start('dash-app', PYTHON, [path.join(APP_DIR, 'app.py'), '--port', String(appPort)], {
    // Graph calls (the dashboard's profile card) go to the dev IdP.
    AADGATE_GRAPH_URL: idp,
  });

  const proxyToml = path.join(tmp, 'aadgate.toml');
  writeFileSync(proxyToml, proxyConfig(proxyPort, idpPort, appPort));

  await Promise.all([
    waitFor('the dev IdP answers discovery', idpChild, () =>
      httpOk(`${idp}/${TENANT}/v2.0/.well-known/openid-configuration`),
    ),
    waitFor('the app says it is listening', app, () => app.output.includes(`listening on http://127.0.0.1:${appPort}`)),
  ]);

  const proxyChild = start('proxy', BIN, ['proxy', '--config', proxyToml], {
    AADGATE_OIDC_CLIENT_SECRET: CLIENT_SECRET,
    AADGATE_SESSION_SECRET: randomBytes(32).toString('hex'),
  });
  await waitFor('the proxy answers /healthz', proxyChild, () => httpOk(`${proxy}/healthz`));

  browser = await launchChromium();
});

after(() => tearDown(browser, tmp));

// ------------------------------------------------------------------ browser

const newPage = () => openPage(browser);

async function shot(page, name) {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

/** The dev IdP's account picker: waits for it, optionally screenshots it, picks `username`. */
async function pickAccount(page, username, screenshot) {
  await page.waitForURL(url => url.href.startsWith(`${idp}/${TENANT}/oauth2/v2.0/authorize`));
  const account = page.locator(`button.account[name="login_hint"][value="${username}"]`);
  await account.waitFor();
  if (screenshot) await shot(page, screenshot);
  await account.click();
}

/** Opens `pathname` through the proxy in a fresh browser and signs in as `username`. */
async function signedIn(username, pathname, screenshot) {
  const { context, page } = await newPage();
  await page.goto(`${proxy}${pathname}`);
  await pickAccount(page, username, screenshot);
  await page.waitForURL(url => url.origin === proxy && url.pathname === pathname);
  return { context, page };
}

const isCallback = response => new URL(response.url()).pathname.endsWith('/_dash-update-component');
const outputsOf = response => response.request().postData() || '';

/** The bar heights the chart shows, read from plotly's graph div once bars are drawn. */
async function chartValues(page) {
  await page.locator('#sales-chart .main-svg .trace.bars .point').first().waitFor();
  return page.evaluate(() => {
    const graph = document.querySelector('#sales-chart .js-plotly-plot');
    return Array.from(graph.data[0].y);
  });
}

async function chooseRegion(page, region) {
  await page.locator('#region').click();
  await page.getByRole('option', { name: region, exact: true }).click();
}

// -------------------------------------------------------------------- tests

test('sign-in at the dev IdP leads back to the Dash page, with the name and a chart', async () => {
  const { context, page } = await newPage();
  try {
    await page.goto(`${proxy}/dash/`);
    await pickAccount(page, 'reader', '01-dev-idp-account-picker');
    await page.waitForURL(`${proxy}/dash/`);
    await page.locator('#navbar-user', { hasText: 'Rita Reader' }).waitFor();
    assert.equal((await page.locator('#navbar-user').textContent()).trim(), 'Rita Reader');
    const svg = page.locator('#sales-chart .main-svg').first();
    await svg.waitFor();
    const values = await chartValues(page);
    assert.ok(values.length >= 12, `chart has data: ${values}`);
    assert.ok(await page.locator('#sales-chart .trace.bars .point').count() >= 12);
    // The Microsoft Graph profile, fetched by the app (the aadgate Python
    // package) with the access token aadgate passed on: the dev IdP's /v1.0/me.
    const profile = page.locator('#graph-profile');
    await profile.locator('dd', { hasText: 'reader@contoso.example' }).first().waitFor();
    const text = await profile.textContent();
    assert.ok(text.includes('Rita Reader') && text.includes('From Microsoft Graph'), text);
    await shot(page, '01-reader-dashboard');
  } finally {
    await context.close();
  }
});

test('App.Write is enforced on the write callback: the reader is refused, the writer adds data', async () => {
  const value = 4321 + Math.floor(Math.random() * 1000);

  // The reader: 403 from aadgate, nothing changes.
  const reader = await signedIn('reader', '/dash/');
  let before;
  try {
    const { page } = reader;
    before = await chartValues(page);
    await page.locator('#new-value').fill(String(value));
    const [response] = await Promise.all([
      page.waitForResponse(r => isCallback(r) && outputsOf(r).includes('write-result')),
      page.locator('#write-button').click(),
    ]);
    assert.equal(response.status(), 403, 'aadgate refuses the write callback');
    const body = await response.json();
    assert.equal(body.error, 'forbidden');
    assert.equal(body.required_role, 'App.Write');
    await page.locator('#denied-notice').waitFor();
    await shot(page, '02-reader-write-refused');
    assert.equal((await page.locator('#write-result').textContent()).trim(), '', 'no result shown');
    assert.deepEqual(await chartValues(page), before, 'chart unchanged for the reader');
    // The server's data is unchanged too: a reload draws the same bars.
    await page.reload();
    assert.deepEqual(await chartValues(page), before, 'data unchanged after a reload');
  } finally {
    await reader.context.close();
  }

  // The writer: the same action succeeds and the chart shows the new value.
  const writer = await signedIn('writer', '/dash/');
  try {
    const { page } = writer;
    await page.locator('#navbar-user', { hasText: 'Walt Writer' }).waitFor();
    assert.deepEqual(await chartValues(page), before, 'the reader changed nothing');
    await page.locator('#new-value').fill(String(value));
    const [response] = await Promise.all([
      page.waitForResponse(r => isCallback(r) && outputsOf(r).includes('write-result')),
      page.locator('#write-button').click(),
    ]);
    assert.equal(response.status(), 200, 'the writer may write');
    await page.locator('#write-result', { hasText: `Added ${value.toLocaleString('en-US')} €` }).waitFor();
    await page.waitForFunction(
      n => document.querySelector('#sales-chart .js-plotly-plot')?.data?.[0]?.y?.length === n,
      before.length + 1,
    );
    const afterValues = await chartValues(page);
    assert.deepEqual(afterValues, [...before, value], 'the new value is the last bar');
    await shot(page, '02-writer-write-succeeded');
  } finally {
    await writer.context.close();
  }
});

test('only App.Admin reaches /admin; reader and writer get the 403 page', async () => {
  for (const username of ['reader', 'writer']) {
    const { context, page } = await newPage();
    try {
      await page.goto(`${proxy}/admin`);
      await pickAccount(page, username);
      await page.waitForURL(`${proxy}/admin`);
      await page.getByText('Access denied').first().waitFor();
      assert.ok((await page.title()).includes('Access denied') || (await page.content()).includes('Access denied'));
      assert.equal(await page.locator('#identity-headers').count(), 0, 'the app page is not shown');
      await shot(page, `03-${username}-admin-denied`);
    } finally {
      await context.close();
    }
  }
  const { context, page } = await signedIn('admin', '/admin');
  try {
    const table = page.locator('#identity-headers');
    await table.waitFor();
    await page.locator('#navbar-user', { hasText: 'Ada Admin' }).waitFor();
    const text = await table.textContent();
    assert.match(text, /X-Forwarded-Name\s*Ada Admin/i);
    assert.match(text, /X-Forwarded-Roles\s*App\.Read,App\.Write,App\.Admin/i);
    assert.match(text, /X-Ms-Client-Principal-Name\s*admin@contoso\.example/i);
    await shot(page, '03-admin-admin-page');
  } finally {
    await context.close();
  }
});

test('a session that ends while the page is open leads back through sign-in to the same page', async () => {
  const { context, page } = await signedIn('reader', '/dash/');
  try {
    await chartValues(page);
    const session = (await context.cookies(proxy)).find(c => c.name === 'aadgate');
    assert.ok(session, 'the proxy set its session cookie "aadgate"');
    // Well-formed but unknown: to the server, exactly a session that expired.
    const unknown = randomBytes(32).toString('base64url');
    assert.match(unknown, /^[A-Za-z0-9_-]{43}$/);
    await context.addCookies([{ ...session, value: unknown }]);
    const jar = (await context.cookies(proxy)).filter(c => c.name === 'aadgate');
    assert.deepEqual(jar.map(c => c.value), [unknown], 'the cookie was replaced, not added');

    const [response, loginRequest] = await Promise.all([
      page.waitForResponse(r => isCallback(r) && r.request().method() === 'POST'),
      page.waitForRequest(r => r.isNavigationRequest() && new URL(r.url()).pathname === '/auth/login'),
      chooseRegion(page, 'South'),
    ]);
    assert.equal(response.status(), 401, 'aadgate answers the callback with 401');
    // The page navigates away at once, so its copy of the body is gone; ask
    // again with the same cookie and body to see what the page was told.
    const again = await fetch(response.url(), {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json', cookie: `aadgate=${unknown}` },
      body: response.request().postData(),
    });
    assert.equal(again.status, 401);
    assert.equal((await again.json()).error, 'login_required');
    const rd = new URL(loginRequest.url()).searchParams.get('rd');
    assert.ok(rd && rd.startsWith('/dash/'), `session.js returns to the page: rd=${rd}`);

    await pickAccount(page, 'reader', '04-session-ended-sign-in-again');
    await page.waitForURL(url => url.origin === proxy && url.pathname === '/dash/');
    await page.locator('#navbar-user', { hasText: 'Rita Reader' }).waitFor();
    await chartValues(page);
    // The dropdown persists in sessionStorage: the choice that met the
    // ended session is still made, and its chart is drawn this time.
    await page.locator('#region', { hasText: 'South' }).waitFor();
    await page.locator('#chart-summary', { hasText: 'months' }).waitFor();
    await shot(page, '04-back-on-the-dashboard');
  } finally {
    await context.close();
  }
});

test('signing out ends the session: the next visit asks for sign-in again', async () => {
  const { context, page } = await signedIn('reader', '/dash/');
  try {
    await page.locator('#navbar-user', { hasText: 'Rita Reader' }).waitFor();
    await page.locator('#sign-out').click();
    await page.waitForURL(url => url.origin === proxy && url.pathname === '/auth/signed-out');
    await shot(page, '05-signed-out');
    await page.goto(`${proxy}/dash/`);
    const url = new URL(page.url());
    const atPicker = url.href.startsWith(`${idp}/${TENANT}/oauth2/v2.0/authorize`);
    const signedOut = url.origin === proxy && url.pathname === '/auth/signed-out';
    assert.ok(atPicker || signedOut, `sign-in asked for again, at ${url.href}`);
    if (atPicker) {
      await page.locator('button.account').first().waitFor();
      assert.equal(await page.locator('.badge').count(), 0, 'the dev IdP session ended too');
    }
    assert.equal(await page.locator('#navbar-user').count(), 0, 'the dashboard is not shown');
    await shot(page, '05-after-sign-out-sign-in-again');
  } finally {
    await context.close();
  }
});

test('App Service compatibility: /appservice shows the name and roles from the headers and /.auth/me', async () => {
  const { context, page } = await signedIn('admin', '/appservice');
  try {
    await page.locator('#principal-name').waitFor();
    assert.equal((await page.locator('#principal-name').textContent()).trim(), 'admin@contoso.example');
    assert.equal((await page.locator('#principal-display-name').textContent()).trim(), 'Ada Admin');
    assert.match(await page.locator('#principal-roles').textContent(), /App\.Admin/);
    assert.equal((await page.locator('#principal-idp').textContent()).trim(), 'aad');
    await page.locator('#authme-user', { hasText: 'admin@contoso.example' }).waitFor();
    await page.locator('#authme-roles .role', { hasText: 'App.Admin' }).waitFor();
    await shot(page, '06-admin-appservice');
  } finally {
    await context.close();
  }
});

test('the write rule holds for spellings of the callback path that the app decodes to the same route', async () => {
  const { context, page } = await signedIn('reader', '/dash/');
  try {
    const before = await chartValues(page);
    const body = JSON.stringify({
      output: '..write-result.children...data-version.data..',
      outputs: [
        { id: 'write-result', property: 'children' },
        { id: 'data-version', property: 'data' },
      ],
      inputs: [{ id: 'write-button', property: 'n_clicks', value: 1 }],
      state: [
        { id: 'new-value', property: 'value', value: 999 },
        { id: 'region', property: 'value', value: 'North' },
      ],
      changedPropIds: ['write-button.n_clicks'],
    });
    // Werkzeug percent-decodes the path before routing, so each of these
    // reaches Dash's callback endpoint when aadgate lets it through.
    const spellings = ['/dash/_dash-update-c%6Fmponent', '/dash/%5Fdash-update-component', '/dash/_dash%2Dupdate-component'];
    const statuses = await page.evaluate(
      async ({ spellings, body }) => {
        const out = {};
        for (const p of spellings) {
          const r = await fetch(p, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
          out[p] = r.status;
        }
        return out;
      },
      { spellings, body },
    );
    for (const [spelling, status] of Object.entries(statuses)) {
      assert.ok(status >= 400, `reader's write through ${spelling} must be refused, got ${status}`);
    }
    await page.reload();
    assert.deepEqual(await chartValues(page), before, 'data unchanged');
  } finally {
    await context.close();
  }
});
