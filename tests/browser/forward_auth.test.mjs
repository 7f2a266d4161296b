// Forward-auth end to end: examples/dash-app behind Debian's real nginx
// (`auth_request`) and Caddy (`forward_auth`), each asking aadgate's
// /auth/check, signing in at aadgate's dev IdP, in a real browser.
//
// Hosts: aadgate is http://auth.example.localhost:<port>, the app is
// http://app.example.localhost:<port> behind nginx or Caddy (Chromium
// resolves *.localhost to loopback itself). The session cookie is shared
// under `session.cookie_domain = "example.localhost"`, and sign-in returns to
// the app's host through `forward_auth.hosts`: the several-hosts setup.
//
// The nginx and Caddy configurations here are the ones docs/forward-auth.md
// shows, with this run's ports.
//
// Environment: AADGATE_BIN, PYTHON, CHROMIUM, NGINX (default nginx), CADDY
// (default caddy), AADGATE_SCREENSHOTS.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { freePort, launchChromium, newPage as openPage, nginxConfig, start as startIn, tearDown, waitFor } from './processes.mjs';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const APP_DIR = path.join(REPO, 'examples', 'dash-app');
const BIN = process.env.AADGATE_BIN || path.join(REPO, 'target', 'debug', 'aadgate');
const PYTHON = process.env.PYTHON || 'python3';
const NGINX = process.env.NGINX || 'nginx';
const CADDY = process.env.CADDY || 'caddy';
const SHOTS = path.resolve(REPO, process.env.AADGATE_SCREENSHOTS || 'test-artifacts/screenshots');

const TENANT = '7e1d5a2c-4b9f-4e63-a8d0-3c5f9b2e1a47';
const CLIENT_ID = '2b8f6e14-9c3d-4a7e-b5f1-0d6c8e4a9b23';
const CLIENT_SECRET = 'dev-secret-change-me';
const start = (name, command, args, env = {}) => startIn(name, command, args, { cwd: REPO, env });

let tmp;
let browser;
let auth; // http://auth.example.localhost:<port> (aadgate itself)
let viaNginx; // http://app.example.localhost:<port>
let viaCaddy; // http://app.example.localhost:<port>
let idp;

/** A navigation's GET on loopback with a Host header (Node's fetch cannot resolve *.localhost names). */
function probe(port, host, pathname) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.write(
        `GET ${pathname} HTTP/1.1\r\nHost: ${host}\r\nAccept: text/html\r\nSec-Fetch-Mode: navigate\r\nConnection: close\r\n\r\n`,
      );
    });
    let data = '';
    socket.setEncoding('utf8');
    socket.on('data', d => (data += d));
    socket.on('end', () => resolve(Number(data.split(' ')[1])));
    socket.on('error', reject);
    socket.setTimeout(2000, () => socket.destroy(new Error('timeout')));
  });
}

/** docs/forward-auth.md's nginx server block, with this run's ports. */
function nginxServer(nginxPort, aadgatePort, appPort) {
  return nginxConfig(
    tmp,
    `
  server {
    listen 127.0.0.1:${nginxPort};
    server_name app.example.localhost;

    # --- from docs/forward-auth.md ---
    location = /_aadgate_check {
      internal;
      proxy_pass http://127.0.0.1:${aadgatePort}/auth/check;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-Method $request_method;
      proxy_set_header X-Forwarded-Uri $request_uri;
      proxy_set_header X-Forwarded-Host $http_host;
      proxy_set_header X-Forwarded-Proto $scheme;
    }

    location = /auth/session.js {
      proxy_pass http://127.0.0.1:${aadgatePort};
      proxy_set_header Host $http_host;
    }

    # Navigations go to sign-in; a script's request (a Dash callback after
    # the session ended) gets the JSON /auth/session.js acts on.
    location @aadgate_sign_in {
      default_type application/json;
      if ($aadgate_sign_in = "") {
        return 401 '{"error":"login_required","login_url":"${auth}/auth/login"}';
      }
      return 302 $aadgate_sign_in;
    }

    location / {
      auth_request /_aadgate_check;
      auth_request_set $aadgate_sign_in $upstream_http_location;
      error_page 401 = @aadgate_sign_in;

      auth_request_set $aadgate_user $upstream_http_x_forwarded_user;
      auth_request_set $aadgate_name $upstream_http_x_forwarded_name;
      auth_request_set $aadgate_email $upstream_http_x_forwarded_email;
      auth_request_set $aadgate_roles $upstream_http_x_forwarded_roles;
      auth_request_set $aadgate_groups $upstream_http_x_forwarded_groups;
      proxy_set_header X-Forwarded-User $aadgate_user;
      proxy_set_header X-Forwarded-Name $aadgate_name;
      proxy_set_header X-Forwarded-Email $aadgate_email;
      proxy_set_header X-Forwarded-Roles $aadgate_roles;
      proxy_set_header X-Forwarded-Groups $aadgate_groups;

      proxy_pass http://127.0.0.1:${appPort};
      proxy_set_header Host $http_host;
    }
    # --- end ---
  }
`,
  );
}

/** docs/forward-auth.md's Caddyfile, with this run's ports. */
function caddyfile(caddyPort, aadgatePort, appPort) {
  return `{
	admin off
	auto_https off
}

http://app.example.localhost:${caddyPort} {
	# Dash apps load aadgate's session script from their own host.
	handle /auth/session.js {
		reverse_proxy 127.0.0.1:${aadgatePort}
	}
	handle {
		forward_auth 127.0.0.1:${aadgatePort} {
			uri /auth/check?redirect=1
			header_up X-Forwarded-Host {hostport}
			copy_headers X-Forwarded-User X-Forwarded-Name X-Forwarded-Email X-Forwarded-Roles X-Forwarded-Groups
		}
		reverse_proxy 127.0.0.1:${appPort}
	}
}
`;
}

before(async () => {
  tmp = mkdtempSync(path.join(tmpdir(), 'aadgate-fwd-'));
  mkdirSync(SHOTS, { recursive: true });
  const [idpPort, appPort, aadgatePort, nginxPort, caddyPort] = await Promise.all(
    [1, 2, 3, 4, 5].map(freePort),
  );
  idp = `http://127.0.0.1:${idpPort}`;
  auth = `http://auth.example.localhost:${aadgatePort}`;
  viaNginx = `http://app.example.localhost:${nginxPort}`;
  viaCaddy = `http://app.example.localhost:${caddyPort}`;

  const idpToml = path.join(tmp, 'idp.toml');
  writeFileSync(idpToml, `redirect_uris = ["${auth}/auth/callback"]\n`);
  const idpChild = start('dev-idp', BIN, ['dev-idp', '--listen', `127.0.0.1:${idpPort}`, '--config', idpToml]);
  const app = start('dash-app', PYTHON, [path.join(APP_DIR, 'app.py'), '--port', String(appPort)], {
    // Graph calls (the dashboard's profile card) go to the dev IdP.
    AADGATE_GRAPH_URL: idp,
  });

  const aadgateToml = path.join(tmp, 'aadgate.toml');
  writeFileSync(
    aadgateToml,
    `
listen = "127.0.0.1:${aadgatePort}"
public_url = "${auth}"
upstream = "http://127.0.0.1:${appPort}"
trusted_proxies = ["127.0.0.1/32"]

[forward_auth]
hosts = ["app.example.localhost"]

[oidc]
tenant = "${TENANT}"
issuer = "${idp}/${TENANT}/v2.0"
client_id = "${CLIENT_ID}"

[session]
store = "memory"
cookie_domain = "example.localhost"

[authz]
roles = ["App.Read", "App.Write", "App.Admin"]

[[route]]
path = "/admin"
role = "App.Admin"
`,
  );
  const nginxConf = path.join(tmp, 'nginx.conf');
  writeFileSync(nginxConf, nginxServer(nginxPort, aadgatePort, appPort));
  const caddyConf = path.join(tmp, 'Caddyfile');
  writeFileSync(caddyConf, caddyfile(caddyPort, aadgatePort, appPort));

  await Promise.all([
    waitFor('the dev IdP answers discovery', idpChild, async () =>
      (await fetch(`${idp}/${TENANT}/v2.0/.well-known/openid-configuration`)).ok,
    ),
    waitFor('the app listens', app, () => app.output.includes(`listening on http://127.0.0.1:${appPort}`)),
  ]);
  const gate = start('aadgate', BIN, ['proxy', '--config', aadgateToml], {
    AADGATE_OIDC_CLIENT_SECRET: CLIENT_SECRET,
    AADGATE_SESSION_SECRET: randomBytes(32).toString('hex'),
  });
  await waitFor('aadgate answers /healthz', gate, async () => (await probe(aadgatePort, 'x', '/healthz')) === 200);
  const nginx = start('nginx', NGINX, ['-c', nginxConf, '-p', tmp]);
  const caddy = start('caddy', CADDY, ['run', '--config', caddyConf, '--adapter', 'caddyfile'], {
    HOME: tmp,
    XDG_DATA_HOME: path.join(tmp, 'caddy-data'),
    XDG_CONFIG_HOME: path.join(tmp, 'caddy-config'),
  });
  // Signed out, both answer a navigation with a redirect to sign-in
  // (nginx's error_page 401, Caddy passing aadgate's 302 on).
  await waitFor('nginx asks aadgate', nginx, async () =>
    (await probe(nginxPort, `app.example.localhost:${nginxPort}`, '/')) === 302,
  );
  await waitFor('Caddy asks aadgate', caddy, async () =>
    (await probe(caddyPort, `app.example.localhost:${caddyPort}`, '/')) === 302,
  );

  browser = await launchChromium();
});

after(() => tearDown(browser, tmp));

const newPage = () => openPage(browser);

/** Opens `url` signed out, signs in as `username` at the dev IdP, and waits to be back on `url`. */
async function signInVia(page, url, username) {
  await page.goto(url);
  await page.waitForURL(u => u.href.startsWith(`${idp}/${TENANT}/oauth2/v2.0/authorize`));
  const account = page.locator(`button.account[name="login_hint"][value="${username}"]`);
  await account.click();
  await page.waitForURL(url);
}

for (const [name, front] of [
  ['nginx auth_request', () => viaNginx],
  ['Caddy forward_auth', () => viaCaddy],
]) {
  test(`${name}: sign-in returns to the Dash app on its own host, which works and knows the user`, async () => {
    const { context, page } = await newPage();
    try {
      const dash = `${front()}/dash/?tab=sales`;
      await signInVia(page, dash, 'reader');
      assert.equal(page.url(), dash);
      // The app got the identity headers the front copied from the check.
      await page.locator('#navbar-user', { hasText: 'Rita Reader' }).waitFor();
      // Dash's callbacks go through the check too, and work.
      await page.locator('#sales-chart .main-svg .trace.bars .point').first().waitFor();
      const slug = name.split(' ')[0].toLowerCase();
      await page.screenshot({ path: path.join(SHOTS, `forward-auth-${slug}-dashboard.png`), fullPage: true });
      // The session cookie belongs to the shared domain, not to aadgate's host alone.
      const cookies = await context.cookies(front());
      const session = cookies.find(c => c.name === 'aadgate');
      assert.ok(session, JSON.stringify(cookies));
      assert.equal(session.domain, '.example.localhost');
      assert.ok(session.httpOnly);

      // The role rule of the proxy applies in front of the app: App.Admin only.
      const admin = await page.goto(`${front()}/admin`);
      assert.equal(admin.status(), 403);
    } finally {
      await context.close();
    }
  });

  test(`${name}: the admin passes the role rule; signing out ends access through the front`, async () => {
    const { context, page } = await newPage();
    try {
      await signInVia(page, `${front()}/admin`, 'admin');
      assert.equal(page.url(), `${front()}/admin`);
      assert.equal((await page.reload()).status(), 200);
      const [session] = (await context.cookies(front())).filter(c => c.name === 'aadgate');
      assert.ok(session);
      const check = () =>
        fetch(`http://127.0.0.1:${new URL(auth).port}/auth/check`, {
          headers: {
            cookie: `aadgate=${session.value}`,
            'x-forwarded-host': new URL(front()).host,
            'x-forwarded-uri': '/dash/',
            accept: 'application/json',
          },
          redirect: 'manual',
        });
      assert.equal((await check()).status, 200);
      // Sign out at aadgate, typed by the user.
      await page.goto(`${auth}/auth/logout`);
      await page.waitForURL(u => !u.href.startsWith(`${auth}/auth/logout`));
      // The cookie is gone from the browser, and the session from aadgate.
      assert.ok(!(await context.cookies(front())).some(c => c.name === 'aadgate'));
      const after = await check();
      assert.equal(after.status, 401);
      assert.equal((await after.json()).error, 'login_required');
    } finally {
      await context.close();
    }
  });
}
