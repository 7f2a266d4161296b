//! Microsoft Entra ID facts: its clouds' sign-in hosts, the shape of its
//! tenant ids, and its error codes (AADSTS) explained for the person who has
//! to fix the setting. Never branch on `error_description` text; only the code.

/// What an AADSTS code means and which setting to change: the one home of
/// these explanations, used alike by `aadgate check-config --online`, the
/// log and the page a browser sees when a sign-in is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Explanation {
    /// The numeric code.
    pub code: u32,
    /// One-line meaning.
    pub meaning: &'static str,
    /// What to do about it.
    pub fix: &'static str,
    /// The aadgate setting at fault (`oidc.client_secret`), when one is;
    /// `None` when the fix is at the provider or with the user.
    pub key: Option<&'static str>,
}

/// `AADSTS7000215: The client secret is not valid for this app. Fix: …`
impl std::fmt::Display for Explanation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AADSTS{}: {} Fix: {}", self.code, self.meaning, self.fix)
    }
}

const fn exp(
    code: u32,
    meaning: &'static str,
    fix: &'static str,
    key: Option<&'static str>,
) -> Explanation {
    Explanation {
        code,
        meaning,
        fix,
        key,
    }
}

const TENANT: Option<&str> = Some("oidc.tenant");
const CLIENT_ID: Option<&str> = Some("oidc.client_id");
const CLIENT_SECRET: Option<&str> = Some("oidc.client_secret");
const PUBLIC_URL: Option<&str> = Some("public_url");

const TABLE: &[Explanation] = &[
    // The app's settings: tenant, client id, secret, redirect URI.
    exp(
        90002,
        "The tenant was not found (wrong tenant or wrong cloud).",
        "oidc.tenant does not exist in this cloud: use the Directory (tenant) ID from the app registration's Overview (or the tenant's verified domain), and check oidc.cloud (public, usgov, china).",
        TENANT,
    ),
    exp(
        900023,
        "The tenant identifier is neither a tenant ID nor a domain of a tenant.",
        "oidc.tenant is malformed: use the Directory (tenant) ID GUID from the app registration's Overview, or a verified domain such as contoso.onmicrosoft.com.",
        TENANT,
    ),
    exp(
        50194,
        "A single-tenant app was used with the /common endpoint.",
        "Set oidc.tenant to your tenant ID or domain instead of \"common\" or \"organizations\".",
        TENANT,
    ),
    exp(
        50059,
        "No tenant was named (the request went to /common or /organizations).",
        "Set oidc.tenant to the tenant ID or domain the app is registered in.",
        TENANT,
    ),
    exp(
        700016,
        "The application (client) ID was not found in the tenant.",
        "oidc.client_id is not an app of this tenant: copy the Application (client) ID from the app registration's Overview, and check oidc.tenant is the tenant the app is registered in.",
        CLIENT_ID,
    ),
    exp(
        7000215,
        "The client secret is not valid for this app.",
        "oidc.client_secret is wrong: use the secret's Value, not its Secret ID (App registrations > Certificates & secrets; set AADGATE_OIDC_CLIENT_SECRET).",
        CLIENT_SECRET,
    ),
    exp(
        7000222,
        "The client secret has expired.",
        "oidc.client_secret has expired: create a new secret under Certificates & secrets and put its Value in AADGATE_OIDC_CLIENT_SECRET.",
        CLIENT_SECRET,
    ),
    exp(
        7000218,
        "No client secret was sent.",
        "oidc.client_secret is empty: set AADGATE_OIDC_CLIENT_SECRET to the secret's Value.",
        CLIENT_SECRET,
    ),
    exp(
        700027,
        "The client assertion (certificate credential) failed signature validation.",
        "upload oidc.client_certificate to the app registration (Certificates & secrets > Certificates) and make oidc.client_key its private key; with a client secret, check that aadgate is not also given a certificate.",
        Some("oidc.client_certificate"),
    ),
    exp(
        70021,
        "No federated credential of the app matches the presented token (issuer, subject, audience).",
        "add a federated credential to the app registration (Certificates & secrets > Federated credentials) with the token's issuer and subject and the audience api://AzureADTokenExchange, or point oidc.client_assertion_file at the right token.",
        Some("oidc.client_assertion_file"),
    ),
    exp(
        700024,
        "The client assertion is not within its valid time range.",
        "the token in oidc.client_assertion_file has expired (the platform renews it: check the mount), or this machine's clock is wrong (NTP).",
        Some("oidc.client_assertion_file"),
    ),
    exp(
        50011,
        "The redirect URI sent does not match any registered for the app.",
        "Add public_url + \"/auth/callback\" exactly (scheme, host, port, path) under the app registration's Authentication > Web > Redirect URIs, or fix public_url.",
        PUBLIC_URL,
    ),
    exp(
        700054,
        "The app registration does not allow this response type.",
        "aadgate uses the authorization-code flow; check the platform is \"Web\" under Authentication.",
        None,
    ),
    exp(
        500011,
        "The resource (the app's own API) has no service principal in this tenant.",
        "Open the app under Enterprise applications in this tenant (registering it in the portal creates one), or check oidc.tenant.",
        None,
    ),
    // The user or the tenant's policies.
    exp(
        65001,
        "The user or an administrator has not consented to the app.",
        "Grant admin consent under API permissions, or let the user consent.",
        None,
    ),
    exp(
        50105,
        "The signed-in user is not assigned to a role for this app.",
        "Assign the user (or a group) to the app under Enterprise applications > Users and groups, or turn off \"Assignment required\".",
        None,
    ),
    exp(
        90094,
        "Administrator consent is required.",
        "Ask a tenant administrator to grant consent under API permissions.",
        None,
    ),
    exp(
        90095,
        "Administrator consent is required.",
        "Ask a tenant administrator to grant consent under API permissions.",
        None,
    ),
    exp(
        50020,
        "The user's account is not in this tenant (guest not invited, or wrong tenant).",
        "Invite the user as a guest, or use oidc.tenant = \"organizations\" with allowed_tenants for a multi-tenant app.",
        None,
    ),
    exp(
        50034,
        "The user account does not exist in this directory.",
        "Check the user name and the tenant in oidc.tenant.",
        None,
    ),
    exp(
        16000,
        "The account is not in the tenant the app signs in to.",
        "Sign in with an account of the configured tenant, or invite the user.",
        None,
    ),
    exp(
        53003,
        "A Conditional Access policy blocked the sign-in.",
        "Ask the tenant administrator which Conditional Access policy applies (see the sign-in logs with the correlation id).",
        None,
    ),
    exp(
        50076,
        "Multi-factor authentication is required.",
        "Complete MFA; nothing to change in aadgate.",
        None,
    ),
    exp(
        50079,
        "The user must register for multi-factor authentication.",
        "Register MFA methods at https://aka.ms/mfasetup.",
        None,
    ),
    exp(
        50058,
        "No user is signed in at the identity provider.",
        "Start the sign-in again interactively.",
        None,
    ),
    exp(
        54005,
        "The authorization code was already used.",
        "Start the sign-in again; do not reload the callback page.",
        None,
    ),
    exp(
        700082,
        "The refresh token has expired.",
        "Sign in again.",
        None,
    ),
    exp(
        50173,
        "The refresh token is no longer valid (password changed or revoked).",
        "Sign in again.",
        None,
    ),
];

/// Codes that mean the configured tenant is wrong (`oidc.tenant`).
pub const TENANT_CODES: &[u32] = &[90002, 900023, 50194, 50059];

/// Finds the first `AADSTS<digits>` code in a text (an `error_description`).
pub fn find_code(text: &str) -> Option<u32> {
    let i = text.find("AADSTS")?;
    let digits: String = text[i + 6..]
        .chars()
        .take_while(char::is_ascii_digit)
        .take(9)
        .collect();
    digits.parse().ok()
}

/// Explains a code, if known.
pub fn explain(code: u32) -> Option<&'static Explanation> {
    TABLE.iter().find(|e| e.code == code)
}

/// Explains the first AADSTS code in a provider's `error_description` (or
/// an error page), if there is one aadgate knows.
pub fn explain_text(text: &str) -> Option<&'static Explanation> {
    find_code(text).and_then(explain)
}

/// The sign-in host of an Entra ID cloud named in `oidc.cloud`: `public`,
/// `usgov` or `china`; `None` for any other name.
pub fn cloud_host(cloud: &str) -> Option<&'static str> {
    match cloud {
        "public" => Some("login.microsoftonline.com"),
        "usgov" => Some("login.microsoftonline.us"),
        "china" => Some("login.partner.microsoftonline.cn"),
        _ => None,
    }
}

/// Microsoft Graph's host in an Entra ID cloud named in `oidc.cloud`.
pub fn graph_host(cloud: &str) -> Option<&'static str> {
    match cloud {
        "public" => Some("graph.microsoft.com"),
        "usgov" => Some("graph.microsoft.us"),
        "china" => Some("microsoftgraph.chinacloudapi.cn"),
        _ => None,
    }
}

/// Whether `s` looks like a GUID (8-4-4-4-12 hex digits), as Entra's tenant
/// and object ids do.
pub fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_and_explains_codes() {
        assert_eq!(
            find_code("AADSTS50011: The redirect URI 'x' ..."),
            Some(50011)
        );
        assert_eq!(find_code("no code"), None);
        assert!(explain(50011).unwrap().fix.contains("/auth/callback"));
        assert!(explain(1).is_none());
    }

    #[test]
    fn each_setting_code_names_its_key_in_the_fix() {
        for e in TABLE {
            if let Some(key) = e.key {
                assert!(e.fix.contains(key), "AADSTS{} fix names {key}", e.code);
            }
        }
        let secret = explain_text("AADSTS7000215: Invalid client secret provided.").unwrap();
        assert_eq!(secret.key, Some("oidc.client_secret"));
        assert!(
            secret
                .to_string()
                .contains("oidc.client_secret is wrong: use the secret's Value, not its Secret ID")
        );
        assert_eq!(explain(700016).unwrap().key, Some("oidc.client_id"));
        assert_eq!(explain(7000222).unwrap().key, Some("oidc.client_secret"));
        for code in TENANT_CODES {
            assert_eq!(explain(*code).unwrap().key, Some("oidc.tenant"));
        }
        let codes: std::collections::HashSet<u32> = TABLE.iter().map(|e| e.code).collect();
        assert_eq!(codes.len(), TABLE.len(), "each code once");
    }
}
