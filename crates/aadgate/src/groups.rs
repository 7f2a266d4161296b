//! Group overage: Entra puts no `groups` claim in the token of a user in
//! more than 200 groups (`_claim_names`, or `hasgroups` in access tokens).
//! With `authz.resolve_group_overage`, the groups are read from Microsoft
//! Graph with the user's access token and kept in the session; when they
//! cannot be read, the session keeps the overage mark and group rules
//! refuse the user (fail closed).

use aadgate_core::Identity;

use crate::Auth;

impl Auth {
    /// `identity` with its groups read from Graph when its token reported
    /// overage and `authz.resolve_group_overage` is on; otherwise as it is.
    pub(crate) async fn resolve_group_overage(
        &self,
        mut identity: Identity,
        access_token: &str,
    ) -> Identity {
        if !identity.groups_overage || !self.inner.settings.resolve_group_overage {
            return identity;
        }
        match self.inner.provider.member_groups(access_token).await {
            Ok(groups) => {
                tracing::info!(
                    user = %identity.user_id(),
                    groups = groups.len(),
                    "group overage resolved through Microsoft Graph"
                );
                identity.groups = groups;
                identity.groups_overage = false;
            }
            Err(e) => {
                tracing::warn!(
                    user = %identity.user_id(),
                    error = %e,
                    "group overage not resolved: the user's groups could not be read from Microsoft Graph, so [[route]] groups rules refuse them"
                );
            }
        }
        identity
    }
}
