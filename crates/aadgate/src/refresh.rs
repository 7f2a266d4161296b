//! The refresh token, redeemed for two reasons: a fresh access token for
//! downstream calls ([`Auth::access_token`]), and a fresh ID token whose
//! roles and groups replace the session's (`session.revalidate_secs`), so a
//! role removed in Entra ID, or a disabled user, stops working within that
//! time instead of at the end of the session.

use std::sync::Arc;

use aadgate_core::error::ProviderError;
use aadgate_core::{Session, Tokens};

use crate::{Auth, User};

/// A token this close to expiry is refreshed first.
const MARGIN_SECS: i64 = 60;

/// The tokens passed to the app (`pass_access_token`): the access token,
/// when it expires, and the ID token of the same sign-in or refresh.
#[derive(Clone)]
pub struct AppTokens {
    pub(crate) access_token: String,
    pub(crate) expires_at: Option<i64>,
    pub(crate) id_token: Option<String>,
}

impl AppTokens {
    /// The access token. Do not log it.
    pub fn access_token(&self) -> &str {
        &self.access_token
    }

    /// When the access token expires (unix seconds), when the provider said.
    pub fn expires_at(&self) -> Option<i64> {
        self.expires_at
    }

    /// The ID token. Do not log it.
    pub fn id_token(&self) -> Option<&str> {
        self.id_token.as_deref()
    }

    fn of(t: &Tokens) -> Option<Self> {
        Some(Self {
            access_token: t.access_token.clone()?,
            expires_at: t.access_expires_at,
            id_token: t.id_token.clone(),
        })
    }
}

impl std::fmt::Debug for AppTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppTokens")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// The stored tokens if the access token is good for more than [`MARGIN_SECS`].
fn fresh(t: &Tokens, now: i64) -> Option<AppTokens> {
    AppTokens::of(t).filter(|_| t.access_expires_at.is_none_or(|e| e > now + MARGIN_SECS))
}

/// The stored tokens if the access token has not expired yet (used when a
/// refresh is not possible).
fn unexpired(t: &Tokens, now: i64) -> Option<AppTokens> {
    AppTokens::of(t).filter(|_| t.access_expires_at.is_none_or(|e| e > now))
}

/// After a failed refresh, the session is not retried for this long.
const RETRY_AFTER_SECS: i64 = 30;

/// What redeeming a session's refresh token came to.
pub(crate) enum Redeemed {
    /// New tokens (and, with an ID token, new roles and groups) are stored.
    Renewed(AppTokens),
    /// The provider refused the grant, or its new ID token was not
    /// acceptable: the session has been ended.
    Ended,
    /// The session has no refresh token (`offline_access` not granted).
    NoRefreshToken,
    /// The provider could not be asked (outage, timeout, a 5xx).
    Unavailable,
}

impl Redeemed {
    /// The `result` label of `aadgate_refreshes_total` and
    /// `aadgate_revalidations_total`.
    fn result(&self) -> &'static str {
        match self {
            Redeemed::Renewed(_) => "ok",
            Redeemed::Ended => "ended",
            Redeemed::NoRefreshToken => "no_refresh_token",
            Redeemed::Unavailable => "unavailable",
        }
    }
}

/// Token endpoint errors that mean the grant is gone for good, so the user
/// must sign in again: `invalid_grant` (user disabled or deleted, consent
/// or the token revoked, password changed) and `interaction_required`
/// (a policy now wants MFA or consent).
fn grant_is_gone(e: &ProviderError) -> bool {
    matches!(e, ProviderError::TokenEndpoint { error, .. }
        if error == "invalid_grant" || error == "interaction_required")
}

impl Auth {
    /// A valid access token for the user's session: the stored one, or, when it
    /// expires within a minute, a new one from the refresh token. Concurrent
    /// calls for one session make one refresh. When no refresh is possible (no
    /// refresh token, the provider failing — retried after 30 s, not on every
    /// request) the stored token is used while it has not expired. `None` when
    /// the session has no usable access token; when the provider says the grant
    /// is gone (`invalid_grant`: user disabled, consent revoked, token expired)
    /// the session is ended, so the next request signs in again.
    pub async fn access_token(&self, user: &User) -> Option<String> {
        self.app_tokens(user).await.map(|t| t.access_token)
    }

    /// [`Auth::access_token`] with its expiry and the ID token, for the
    /// headers of `pass_access_token`.
    pub async fn app_tokens(&self, user: &User) -> Option<AppTokens> {
        if let Some(t) = fresh(&user.session.tokens, self.clock().now()) {
            return Some(t);
        }
        if user.is_bearer() {
            // The caller's own token: only the caller can renew it.
            return unexpired(&user.session.tokens, self.clock().now());
        }
        self.single_flight(&user.cookie, async {
            if self.failed_recently(&user.cookie) {
                return unexpired(&user.session.tokens, self.clock().now());
            }
            // Another request (or replica) may have refreshed while this one
            // waited.
            let session = self.inner.store.get_full(&user.cookie).await?;
            if let Some(t) = fresh(&session.tokens, self.clock().now()) {
                self.inner.store.recache(&user.cookie, &session);
                return Some(t);
            }
            match self.redeem_for_app(&user.cookie, &session).await {
                Redeemed::Renewed(t) => Some(t),
                Redeemed::Ended => None,
                Redeemed::NoRefreshToken | Redeemed::Unavailable => {
                    unexpired(&session.tokens, self.clock().now())
                }
            }
        })
        .await
    }

    /// Re-derives the roles and groups of a session that is due
    /// (`session.revalidate_secs` after sign-in or the last check). Returns
    /// the session to use (with its view), or `None` when it has ended: the provider refused
    /// the refresh, the session has no refresh token to ask with, or the
    /// provider has been unreachable for longer than
    /// `session.revalidate_grace_secs` past the due time.
    pub(crate) async fn revalidate(
        &self,
        cookie: &Arc<str>,
        every: i64,
    ) -> Option<(Arc<Session>, Arc<crate::UserView>)> {
        self.single_flight(cookie, async {
            let inner = &self.inner;
            let session = inner.store.get_full(cookie).await?;
            let t = self.clock().now();
            if t - session.checked_at < every {
                // Another request (or replica) revalidated it while this one
                // waited.
                return Some(inner.store.recache(cookie, &session));
            }
            let grace = inner.settings.revalidate_grace.as_secs() as i64;
            let outcome = if self.failed_recently(cookie) {
                Redeemed::Unavailable
            } else {
                self.redeem(cookie, &session).await
            };
            let overdue = t - session.checked_at >= every + grace;
            if let Some(m) = self.metrics() {
                m.revalidation(match outcome {
                    Redeemed::Unavailable if overdue => "grace_exceeded",
                    ref other => other.result(),
                });
            }
            match outcome {
                Redeemed::Renewed(_) => inner.store.get_with_view(cookie).await.ok().flatten(),
                Redeemed::Ended => None,
                Redeemed::NoRefreshToken => {
                    tracing::info!(user = %session.identity.user_id(), "session ended for revalidation: it has no refresh token (grant the offline_access scope, or set session.revalidate_secs = 0)");
                    inner.store.remove(cookie).await;
                    None
                }
                Redeemed::Unavailable if overdue => {
                    tracing::warn!(user = %session.identity.user_id(), "session ended: its roles could not be revalidated within session.revalidate_grace_secs (provider unreachable)");
                    inner.store.remove(cookie).await;
                    None
                }
                Redeemed::Unavailable => {
                    tracing::warn!(user = %session.identity.user_id(), overdue_secs = t - session.checked_at - every, "roles not revalidated (provider unreachable); session kept within session.revalidate_grace_secs");
                    inner.store.get_with_view(cookie).await.ok().flatten()
                }
            }
        })
        .await
    }

    /// Runs `work` with the session's refresh lock held, so concurrent
    /// requests of one session redeem its refresh token once.
    async fn single_flight<T>(&self, cookie: &Arc<str>, work: impl Future<Output = T>) -> T {
        let lock = self
            .inner
            .refreshing
            .lock()
            .expect("refresh map lock")
            .entry(cookie.clone())
            .or_default()
            .clone();
        let result = {
            let _single_flight = lock.lock().await;
            // And one process at a time, when replicas share the store.
            self.inner.store.exclusive(cookie, work).await
        };
        // Forget the lock unless another request is already waiting on it.
        let mut map = self.inner.refreshing.lock().expect("refresh map lock");
        if map.get(cookie).is_some_and(|l| Arc::ptr_eq(l, &lock)) && Arc::strong_count(&lock) <= 2 {
            map.remove(cookie);
        }
        result
    }

    fn failed_recently(&self, cookie: &Arc<str>) -> bool {
        self.inner
            .refresh_failed
            .lock()
            .expect("refresh failures lock")
            .get(cookie)
            .is_some_and(|t| self.clock().now() - t < RETRY_AFTER_SECS)
    }

    /// Redeems the session's refresh token and stores what comes back: new
    /// tokens, and from a new ID token (validated fully, and required to
    /// name the same user) the roles, groups and names. The session's
    /// `checked_at` moves to now.
    async fn redeem(&self, cookie: &Arc<str>, session: &Session) -> Redeemed {
        let inner = &self.inner;
        let user = session.identity.user_id();
        let Some(rt) = session.tokens.refresh_token.as_deref() else {
            tracing::debug!(%user, "no refresh token (add the offline_access scope)");
            return Redeemed::NoRefreshToken;
        };
        // Entra ID wants the scopes on refresh; elsewhere send what was granted,
        // or nothing (= the original grant, RFC 6749 section 6).
        let scope = if inner.provider.is_entra() {
            Some(inner.settings.scopes.join(" "))
        } else {
            session.tokens.scope.clone()
        };
        let resp = match inner.provider.refresh(rt, scope.as_deref()).await {
            Ok(r) => r,
            Err(e) if grant_is_gone(&e) => {
                tracing::info!(%user, error = %e, "the provider refused the refresh token; session ended");
                inner.store.remove(cookie).await;
                return Redeemed::Ended;
            }
            Err(e) => {
                tracing::warn!(%user, error = %e, "token refresh failed; retrying in {RETRY_AFTER_SECS} s");
                let now = self.clock().now();
                let mut failed = inner.refresh_failed.lock().expect("refresh failures lock");
                if failed.len() >= 10_000 {
                    failed.retain(|_, t| now - *t < RETRY_AFTER_SECS);
                }
                failed.insert(cookie.clone(), now);
                return Redeemed::Unavailable;
            }
        };
        inner
            .refresh_failed
            .lock()
            .expect("refresh failures lock")
            .remove(cookie);
        let mut identity = None;
        match &resp.id_token {
            Some(id_token) => match inner.provider.validate_id_token(id_token, None).await {
                Ok(c)
                    if c.identity.sub == session.identity.sub
                        && c.identity.issuer == session.identity.issuer =>
                {
                    identity = Some(
                        self.resolve_group_overage(c.identity, &resp.access_token)
                            .await,
                    );
                }
                Ok(_) => {
                    tracing::warn!(%user, "refreshed ID token names another user; session ended");
                    inner.store.remove(cookie).await;
                    return Redeemed::Ended;
                }
                Err(e) => {
                    tracing::warn!(%user, error = %e, "refreshed ID token rejected; session ended");
                    inner.store.remove(cookie).await;
                    return Redeemed::Ended;
                }
            },
            // Entra ID always returns one (the openid scope is always asked for).
            None => {
                tracing::debug!(%user, "the provider sent no ID token with the refreshed tokens; roles kept")
            }
        }
        let t = self.clock().now();
        let change = |s: &mut Session| {
            if let Some(c) = identity {
                if c.roles != s.identity.roles || c.groups != s.identity.groups {
                    tracing::info!(user = %s.identity.user_id(), roles = ?c.roles, "roles or groups changed at the provider");
                }
                s.identity.roles = c.roles;
                s.identity.groups = c.groups;
                s.identity.groups_overage = c.groups_overage;
                s.identity.name = c.name.or(s.identity.name.take());
                s.identity.email = c.email.or(s.identity.email.take());
                s.identity.preferred_username = c
                    .preferred_username
                    .or(s.identity.preferred_username.take());
            }
            s.checked_at = t;
            s.tokens = Tokens {
                id_token: resp.id_token.clone().or(s.tokens.id_token.take()),
                access_token: Some(resp.access_token.clone()),
                access_expires_at: resp.expires_in.map(|secs| t + secs as i64),
                refresh_token: resp.refresh_token.clone().or(s.tokens.refresh_token.take()),
                scope: resp.scope.clone().or(s.tokens.scope.take()),
            };
        };
        if let Err(e) = inner.store.update(cookie, change).await {
            tracing::warn!(error = %e, "could not store refreshed tokens");
        }
        Redeemed::Renewed(AppTokens {
            access_token: resp.access_token,
            expires_at: resp.expires_in.map(|secs| t + secs as i64),
            id_token: resp.id_token.or_else(|| session.tokens.id_token.clone()),
        })
    }

    /// Redeems the session's refresh token now, however fresh its access
    /// token (App Service's `/.auth/refresh`); a provider that failed
    /// within [`RETRY_AFTER_SECS`] is not asked again.
    pub(crate) async fn refresh_now(&self, user: &User) -> Redeemed {
        self.single_flight(&user.cookie, async {
            if self.failed_recently(&user.cookie) {
                return Redeemed::Unavailable;
            }
            match self.inner.store.get_full(&user.cookie).await {
                Some(session) => self.redeem_for_app(&user.cookie, &session).await,
                None => Redeemed::Ended,
            }
        })
        .await
    }

    /// [`Auth::redeem`] for the app's tokens, counted in
    /// `aadgate_refreshes_total`.
    async fn redeem_for_app(&self, cookie: &Arc<str>, session: &Session) -> Redeemed {
        let redeemed = self.redeem(cookie, session).await;
        if let Some(m) = self.metrics() {
            m.refresh(redeemed.result());
        }
        redeemed
    }
}
