//! aadgate's own paths: the one table that the sign-in routes, the layer's
//! "is this ours?" test, the configuration's derived URLs and the docs are
//! built from.
//!
//! ```
//! use aadgate_core::paths::{self, OWN_PATHS};
//! assert!(paths::is_own_path(paths::CALLBACK));
//! assert!(!paths::is_own_path("/auth/callback/"));
//! assert!(!paths::is_own_path("/auth/../admin"));
//! assert_eq!(OWN_PATHS.len(), 14);
//! ```

/// Starts sign-in (`?rd=` a local return path, or an absolute URL on a
/// host in `forward_auth.hosts`).
pub const LOGIN: &str = "/auth/login";
/// The redirect URI (`public_url` + this), where the provider returns.
pub const CALLBACK: &str = "/auth/callback";
/// Ends the session here and at the provider.
pub const LOGOUT: &str = "/auth/logout";
/// Where the provider returns after sign-out.
pub const SIGNED_OUT: &str = "/auth/signed-out";
/// Entra's front-channel logout: the provider ends the sessions of one of
/// its sessions (`?sid=`), loading this in a hidden iframe.
pub const FRONTCHANNEL_LOGOUT: &str = "/auth/frontchannel-logout";
/// The signed-in user as JSON.
pub const ME: &str = "/auth/me";
/// The page script that turns a `401 login_required` into a sign-in.
pub const SESSION_JS: &str = "/auth/session.js";
/// Azure App Service's `/.auth/me`.
pub const APP_SERVICE_ME: &str = "/.auth/me";
/// Azure App Service's sign-in URL.
pub const APP_SERVICE_LOGIN: &str = "/.auth/login/aad";
/// Azure App Service's sign-out URL.
pub const APP_SERVICE_LOGOUT: &str = "/.auth/logout";
/// Azure App Service's token refresh: redeems the refresh token now.
pub const APP_SERVICE_REFRESH: &str = "/.auth/refresh";
/// Forward-auth: may the request a reverse proxy in front names
/// (`X-Forwarded-Method`, `-Uri`, `-Host`) go through?
pub const CHECK: &str = "/auth/check";
/// Liveness: `ok`, on any `Host`.
pub const HEALTHZ: &str = "/healthz";
/// Readiness: the provider's metadata and keys loaded, the session store
/// reachable; on any `Host`.
pub const READYZ: &str = "/readyz";

/// Whether `path` is a health probe, answered whatever the `Host` (load
/// balancers probe by address).
pub fn is_probe(path: &str) -> bool {
    path == HEALTHZ || path == READYZ
}

/// Every path aadgate answers itself (matched exactly on the raw path), with
/// what it is for. They are reachable without a session.
pub const OWN_PATHS: &[(&str, &str)] = &[
    (
        LOGIN,
        "start sign-in; `rd` must be a local path, or an absolute URL on a host in `forward_auth.hosts` (anything else becomes `/`)",
    ),
    (CALLBACK, "the redirect URI"),
    (
        LOGOUT,
        "ends the session here and at the provider (RP-initiated logout)",
    ),
    (
        SIGNED_OUT,
        "the page the provider returns to after sign-out",
    ),
    (
        FRONTCHANNEL_LOGOUT,
        "front-channel logout: ends every session of the provider session `sid` (and `iss`, when sent), on every replica; register `public_url` + this path as the app's Front-channel logout URL",
    ),
    (ME, "the signed-in user as JSON; 401 when signed out"),
    (
        CHECK,
        "forward-auth for nginx `auth_request`, Caddy `forward_auth`, Traefik `forwardAuth`: 200 with identity headers, 401 (sign-in URL in `Location`; `?redirect=1`: a 302) or 403 for the request named by `X-Forwarded-Method`, `-Uri` (or `X-Original-URI`) and `-Host`, from `trusted_proxies` only",
    ),
    (
        SESSION_JS,
        "the page script that turns a `401 login_required` on a background request into a sign-in",
    ),
    (APP_SERVICE_ME, "Azure App Service compatible `/.auth/me`"),
    (APP_SERVICE_LOGIN, "Azure App Service compatible sign-in"),
    (APP_SERVICE_LOGOUT, "Azure App Service compatible sign-out"),
    (
        APP_SERVICE_REFRESH,
        "Azure App Service compatible token refresh: redeems the session's refresh token now (200; 401 when signed out or the grant is gone; 503 when the provider cannot be asked)",
    ),
    (HEALTHZ, "`ok`, answered whatever the `Host`"),
    (
        READYZ,
        "200 `ready` when the provider's metadata and keys are loaded and the session store answers; 503 JSON naming which is not; answered whatever the `Host`",
    ),
];

/// Whether `path` is exactly one of [`OWN_PATHS`]: `/auth/../admin` is not,
/// and goes through the route rules like any other path.
pub fn is_own_path(path: &str) -> bool {
    OWN_PATHS.iter().any(|(p, _)| *p == path)
}
