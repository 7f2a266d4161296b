// An OpenID provider for aadgate's interop tests: `oidc-provider` (an OpenID
// Certified implementation written by someone else), configured the way
// Microsoft Entra ID behaves for an app with app roles:
//
// - one confidential client (client_secret_basic), authorization code with
//   PKCE (S256, required) and refresh tokens (rotated on every use);
// - RS256 ID tokens that carry `name`, `preferred_username`, `email` and the
//   user's app roles in a `roles` claim, as Entra does: roles need no extra
//   scope, they come with `openid`;
// - RP-initiated logout with a registered post-logout redirect URI;
// - users `reader` (App.Read), `writer` (App.Write), `admin` (App.Admin) and
//   `norole` (no role); any password is accepted (dev interactions);
// - consent is given automatically for the client's scopes, like an Entra app
//   whose admin consented for the organisation.
//
// Used in-process by oidc-provider.test.mjs (`startProvider`), or by hand:
//   node provider.mjs --proxy-port 4180 [--port 4181] [--access-token-ttl 30]
// prints the issuer and client credentials as JSON and serves until killed.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

import Provider from 'oidc-provider';

/** The users, keyed by account id (which is also the `sub`). */
export const ACCOUNTS = {
  reader: { name: 'Rita Reader', email: 'reader@example.test', roles: ['App.Read'] },
  writer: { name: 'Walt Writer', email: 'writer@example.test', roles: ['App.Write'] },
  admin: { name: 'Ada Admin', email: 'admin@example.test', roles: ['App.Admin'] },
  // Like Entra, a user without an assignment has no `roles` claim at all.
  norole: { name: 'Nora Norole', email: 'norole@example.test' },
};

function findAccount(_ctx, id) {
  const user = ACCOUNTS[id];
  if (!user) return undefined;
  return {
    accountId: id,
    async claims() {
      return {
        sub: id,
        name: user.name,
        preferred_username: user.email,
        email: user.email,
        email_verified: true,
        ...(user.roles ? { roles: user.roles } : {}),
      };
    },
  };
}

/** An RSA 2048 signing key as a private JWK. */
function signingKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    ...privateKey.export({ format: 'jwk' }),
    kid: `interop-${randomBytes(6).toString('hex')}`,
    use: 'sig',
    alg: 'RS256',
  };
}

/**
 * Starts the provider on a free loopback port.
 *
 * @param {object} o
 * @param {number} o.proxyPort  aadgate's port (for the client's redirect URIs)
 * @param {number} [o.port]     0 (default) picks a free port
 * @param {string} [o.clientId]
 * @param {string} [o.clientSecret]
 * @param {number} [o.accessTokenTtl] seconds (default 30: aadgate refreshes
 *   tokens expiring within 60 s, so every forwarded request refreshes)
 * @returns {Promise<{issuer: string, port: number, clientId: string,
 *   clientSecret: string, provider: Provider, close: () => Promise<void>}>}
 */
export async function startProvider({
  proxyPort,
  port = 0,
  clientId = 'aadgate-interop',
  clientSecret = randomBytes(24).toString('hex'),
  accessTokenTtl = 30,
}) {
  if (!proxyPort) throw new Error('startProvider: proxyPort is required');
  const server = createServer();
  // The issuer must name the port, so listen first, then build the provider.
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  const actualPort = server.address().port;
  const issuer = `http://127.0.0.1:${actualPort}`;
  const proxy = `http://127.0.0.1:${proxyPort}`;

  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        client_name: 'aadgate interop',
        token_endpoint_auth_method: 'client_secret_basic',
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        redirect_uris: [`${proxy}/auth/callback`],
        post_logout_redirect_uris: [`${proxy}/auth/signed-out`],
        id_token_signed_response_alg: 'RS256',
        scope: 'openid profile email offline_access',
      },
    ],
    findAccount,
    claims: {
      // Entra puts app roles into the ID token without any scope being asked
      // for; here they are released with `openid`, which every sign-in has.
      openid: ['sub', 'roles'],
      profile: ['name', 'preferred_username'],
      email: ['email', 'email_verified'],
    },
    // By default (true) a code-flow ID token carries only `sub` and the rest
    // is left to the userinfo endpoint. Entra (and aadgate, which reads the
    // ID token only) put the profile claims into the ID token itself.
    conformIdTokenClaims: false,
    scopes: ['openid', 'profile', 'email', 'offline_access'],
    responseTypes: ['code'],
    pkce: { required: () => true },
    enabledJWA: { idTokenSigningAlgValues: ['RS256'] },
    jwks: { keys: [signingKey()] },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    features: {
      devInteractions: { enabled: true }, // built-in login form: any password
      rpInitiatedLogout: { enabled: true },
      userinfo: { enabled: true },
    },
    // Refresh tokens, a new one at every use. OpenID Connect Core 1.0 §11
    // lets a provider honour `offline_access` only with `prompt=consent`
    // "unless other conditions ... permitting offline access ... are in
    // place", and oidc-provider drops `offline_access` from an authorization
    // request without `prompt=consent`. Entra issues refresh tokens for
    // `offline_access` without it (consent was given in the portal), and the
    // way oidc-provider's maintainer points to for that is this helper: a
    // refresh token for every code issued to a client allowed the
    // refresh_token grant. (Its scope is then what was granted, i.e. without
    // `offline_access`.)
    issueRefreshToken: async (_ctx, client, code) =>
      client.grantTypeAllowed('refresh_token') && code.scopes.has('openid'),
    rotateRefreshToken: () => true,
    // Automatic consent: the signed-in user's grant for this client always
    // holds the client's scopes, so no consent page is shown.
    async loadExistingGrant(ctx) {
      const { Grant } = ctx.oidc.provider;
      const grantId =
        ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
      let grant = grantId ? await Grant.find(grantId) : undefined;
      if (!grant) {
        grant = new Grant({
          clientId: ctx.oidc.client.clientId,
          accountId: ctx.oidc.session.accountId,
        });
      }
      grant.addOIDCScope(ctx.oidc.client.scope);
      await grant.save();
      return grant;
    },
    ttl: {
      AccessToken: accessTokenTtl,
      AuthorizationCode: 60,
      IdToken: 3600,
      RefreshToken: 24 * 3600,
      Grant: 24 * 3600,
      Session: 24 * 3600,
      Interaction: 600,
    },
  });

  server.on('request', provider.callback());
  const sockets = new Set();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  return {
    issuer,
    port: actualPort,
    clientId,
    clientSecret,
    provider,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

// `node provider.mjs --proxy-port N`: run it by hand.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values } = parseArgs({
    options: {
      'proxy-port': { type: 'string' },
      port: { type: 'string', default: '0' },
      'client-secret': { type: 'string' },
      'access-token-ttl': { type: 'string', default: '30' },
    },
  });
  if (!values['proxy-port']) {
    console.error('usage: node provider.mjs --proxy-port N [--port N] [--access-token-ttl SECS]');
    process.exit(2);
  }
  const p = await startProvider({
    proxyPort: Number(values['proxy-port']),
    port: Number(values.port),
    clientSecret: values['client-secret'],
    accessTokenTtl: Number(values['access-token-ttl']),
  });
  console.log(
    JSON.stringify({ issuer: p.issuer, client_id: p.clientId, client_secret: p.clientSecret }),
  );
  const stop = () => p.close().then(() => process.exit(0));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
