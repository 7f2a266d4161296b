//! Access tokens for downstream calls, refreshed when near expiry.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use aadgate_core::error::ProviderError;
use aadgate_core::{Session, Tokens};

use crate::{Auth, User};

/// A token this close to expiry is refreshed first.
const MARGIN_SECS: i64 = 60;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The stored token if it is good for more than [`MARGIN_SECS`].
fn fresh(t: &Tokens) -> Option<String> {
    let now = now();
    t.access_token
        .clone()
        .filter(|_| t.access_expires_at.is_none_or(|e| e > now + MARGIN_SECS))
}

/// The stored token if it has not expired yet (used when a refresh is not possible).
fn unexpired(t: &Tokens) -> Option<String> {
    let now = now();
    t.access_token
        .clone()
        .filter(|_| t.access_expires_at.is_none_or(|e| e > now))
}

/// After a failed refresh, the session is not retried for this long.
const RETRY_AFTER_SECS: i64 = 30;

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
        if let Some(t) = fresh(&user.session.tokens) {
            return Some(t);
        }
        let lock = self
            .inner
            .refreshing
            .lock()
            .expect("refresh map lock")
            .entry(user.cookie.clone())
            .or_default()
            .clone();
        let result = {
            let _single_flight = lock.lock().await;
            let failed_recently = self
                .inner
                .refresh_failed
                .lock()
                .expect("refresh failures lock")
                .get(&user.cookie)
                .is_some_and(|t| now() - t < RETRY_AFTER_SECS);
            if failed_recently {
                unexpired(&user.session.tokens)
            } else {
                self.refresh(user).await
            }
        };
        // Forget the lock unless another request is already waiting on it.
        let mut map = self.inner.refreshing.lock().expect("refresh map lock");
        if map.get(&user.cookie).is_some_and(|l| Arc::ptr_eq(l, &lock))
            && Arc::strong_count(&lock) <= 2
        {
            map.remove(&user.cookie);
        }
        result
    }

    async fn refresh(&self, user: &User) -> Option<String> {
        let inner = &self.inner;
        // Another request may have refreshed while this one waited.
        let session = inner.store.get_full(&user.cookie).await?;
        if let Some(t) = fresh(&session.tokens) {
            return Some(t);
        }
        let Some(rt) = session.tokens.refresh_token.as_deref() else {
            tracing::debug!(user = %user.id(), "access token near expiry and no refresh token (add the offline_access scope)");
            return unexpired(&session.tokens);
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
            Err(ProviderError::TokenEndpoint {
                error, description, ..
            }) if error == "invalid_grant" => {
                tracing::info!(user = %user.id(), %description, "refresh token no longer valid; session ended");
                inner.store.remove(&user.cookie).await;
                return None;
            }
            Err(e) => {
                tracing::warn!(user = %user.id(), error = %e, "token refresh failed; retrying in {RETRY_AFTER_SECS} s");
                let mut failed = self
                    .inner
                    .refresh_failed
                    .lock()
                    .expect("refresh failures lock");
                if failed.len() >= 10_000 {
                    failed.retain(|_, t| now() - *t < RETRY_AFTER_SECS);
                }
                failed.insert(user.cookie.clone(), now());
                return unexpired(&session.tokens);
            }
        };
        self.inner
            .refresh_failed
            .lock()
            .expect("refresh failures lock")
            .remove(&user.cookie);
        // A refreshed ID token is optional; if present it is validated fully
        // and must name the same user. Its roles and groups replace the old ones,
        // so a role removed at the provider stops working at the next refresh.
        let mut identity = None;
        if let Some(id_token) = &resp.id_token {
            match inner.provider.validate_id_token(id_token, None).await {
                Ok(c)
                    if c.identity.sub == session.identity.sub
                        && c.identity.issuer == session.identity.issuer =>
                {
                    identity = Some(c)
                }
                Ok(_) => {
                    tracing::warn!(user = %user.id(), "refreshed ID token names another user; session ended");
                    inner.store.remove(&user.cookie).await;
                    return None;
                }
                Err(e) => {
                    tracing::warn!(user = %user.id(), error = %e, "refreshed ID token rejected; session ended");
                    inner.store.remove(&user.cookie).await;
                    return None;
                }
            }
        }
        let now = now();
        let change = |s: &mut Session| {
            if let Some(c) = identity.map(|c| c.identity) {
                s.identity.roles = c.roles;
                s.identity.groups = c.groups;
                s.identity.groups_overage = c.groups_overage;
                s.identity.name = c.name.or(s.identity.name.take());
                s.identity.email = c.email.or(s.identity.email.take());
                s.identity.preferred_username = c
                    .preferred_username
                    .or(s.identity.preferred_username.take());
            }
            s.tokens = Tokens {
                id_token: resp.id_token.clone().or(s.tokens.id_token.take()),
                access_token: Some(resp.access_token.clone()),
                access_expires_at: resp.expires_in.map(|secs| now + secs as i64),
                refresh_token: resp.refresh_token.clone().or(s.tokens.refresh_token.take()),
                scope: resp.scope.clone().or(s.tokens.scope.take()),
            };
        };
        if let Err(e) = inner.store.update(&user.cookie, change).await {
            tracing::warn!(error = %e, "could not store refreshed tokens");
        }
        Some(resp.access_token)
    }
}
