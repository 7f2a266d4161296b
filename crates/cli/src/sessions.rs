//! `aadgate sessions list` and `aadgate sessions revoke`: who is signed in,
//! and ending sessions during an incident. With a Redis store the running
//! replicas drop a revoked session from memory at once; the embedded file
//! store is locked by a running aadgate, so stop it first.

use std::time::{Duration, UNIX_EPOCH};

use aadgate_core::session::{Listed, StoreKind, Which};
use aadgate_core::{Config, SessionStore};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Opens the store `config` names, as the proxy does.
pub fn open(config: &Config) -> Result<SessionStore, Error> {
    let settings = config.validate()?;
    SessionStore::open(
        &settings.store,
        &settings.secret,
        settings.idle_timeout,
        settings.lifetime,
    )
    .map_err(|e| match &settings.store {
        StoreKind::File(dir) => format!(
            "{e}. The file store in {} allows one process at a time: stop the running aadgate first, or move to a Redis store to manage sessions while it runs (docs/scale-out.md)",
            dir.display()
        )
        .into(),
        _ => e.into(),
    })
}

/// The live sessions as a table, oldest sign-in first.
pub fn table(listed: &[Listed]) -> String {
    let when = |t: i64| httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(t.max(0) as u64));
    let mut out = format!(
        "{:<16}  {:<36}  {:<24}  {:<29}  {:<29}  {}\n",
        "SESSION", "USER", "NAME", "SIGNED IN", "LAST USED", "ENDS"
    );
    for l in listed {
        let id = &l.session.identity;
        let user = id
            .preferred_username
            .as_deref()
            .or(id.email.as_deref())
            .unwrap_or_else(|| id.user_id());
        out.push_str(&format!(
            "{:<16}  {:<36}  {:<24}  {:<29}  {:<29}  {}\n",
            l.id,
            user,
            id.name.as_deref().unwrap_or(""),
            when(l.session.created_at),
            when(l.session.last_seen),
            when(l.session.expires_at),
        ));
    }
    out.push_str(&format!("{} session(s)\n", listed.len()));
    out
}

/// What `revoke`'s flags name: exactly one of them.
pub fn which(user: Option<String>, session: Option<String>, all: bool) -> Result<Which, Error> {
    match (user, session, all) {
        (Some(u), None, false) => Ok(Which::User(u)),
        (None, Some(s), false) => Ok(Which::Session(s)),
        (None, None, true) => Ok(Which::All),
        _ => Err("give exactly one of --user <oid or UPN>, --session <id from `aadgate sessions list`>, --all".into()),
    }
}
