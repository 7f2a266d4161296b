//! [`RequireRoleLayer`]: a per-route role check inside [`crate::Auth::require_login`].

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::Request;
use axum::response::Response;
use tower::{Layer, Service};

use crate::layer::Lacking;
use crate::{Auth, User};

/// Requires at least a role (or a higher one) of the configured hierarchy,
/// or any one of a list of roles. Build it with [`Auth::require_role`] or
/// [`Auth::require_any_role`]; put it inside [`Auth::require_login`], which
/// finds the user.
#[derive(Clone)]
pub struct RequireRoleLayer {
    pub(crate) auth: Auth,
    pub(crate) needed: Needed,
}

/// What a [`RequireRoleLayer`] requires.
#[derive(Debug, Clone)]
pub(crate) enum Needed {
    /// This role of the hierarchy (name, index) or a higher one.
    AtLeast(Arc<str>, usize),
    /// Any one of these roles (those of the hierarchy also through a
    /// higher one).
    AnyOf(Arc<[String]>),
}

impl std::fmt::Debug for RequireRoleLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequireRoleLayer")
            .field("needed", &self.needed)
            .finish()
    }
}

impl<S> Layer<S> for RequireRoleLayer {
    type Service = RequireRole<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RequireRole {
            layer: self.clone(),
            inner,
        }
    }
}

/// The service made by [`RequireRoleLayer`].
#[derive(Clone)]
pub struct RequireRole<S> {
    layer: RequireRoleLayer,
    inner: S,
}

impl<S> std::fmt::Debug for RequireRole<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequireRole")
            .field("needed", &self.layer.needed)
            .finish()
    }
}

impl<S> Service<Request<Body>> for RequireRole<S>
where
    S: Service<Request<Body>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            let policy = &layer.auth.inner.settings.policy;
            let Some(u) = req.extensions().get::<User>() else {
                return Ok(crate::layer::login_required(&layer.auth, &req));
            };
            let lacking = match &layer.needed {
                Needed::AtLeast(role, i) => (!policy.allows(
                    aadgate_core::Requirement::SignedIn(Some(*i)),
                    &u.session.identity.roles,
                ))
                .then_some(Lacking::Role(role)),
                Needed::AnyOf(roles) => {
                    (!roles.iter().any(|r| u.has_role(r))).then_some(Lacking::AnyOf(roles))
                }
            };
            match lacking {
                Some(lacking) => Ok(crate::layer::forbidden(&layer.auth, &req, u, lacking)),
                None => inner.call(req).await,
            }
        })
    }
}
