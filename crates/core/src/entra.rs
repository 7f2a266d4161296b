//! Microsoft Entra ID facts: its clouds' sign-in hosts, the shape of its
//! tenant ids, and its error codes (AADSTS) explained for the person who has
//! to fix the setting. Never branch on `error_description` text; only the code.

/// What an AADSTS code means and which setting to change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Explanation {
    /// The numeric code.
    pub code: u32,
    /// One-line meaning.
    pub meaning: &'static str,
    /// What to do about it.
    pub fix: &'static str,
}

const TABLE: &[Explanation] = &[
    Explanation {
        code: 50011,
        meaning: "The redirect URI sent does not match any registered for the app.",
        fix: "Add public_url + \"/auth/callback\" exactly (scheme, host, port, path) under the app registration's Authentication > Web > Redirect URIs, or fix public_url.",
    },
    Explanation {
        code: 700054,
        meaning: "The app registration does not allow this response type.",
        fix: "aadgate uses the authorization-code flow; check the platform is \"Web\" under Authentication.",
    },
    Explanation {
        code: 65001,
        meaning: "The user or an administrator has not consented to the app.",
        fix: "Grant admin consent under API permissions, or let the user consent.",
    },
    Explanation {
        code: 50105,
        meaning: "The signed-in user is not assigned to a role for this app.",
        fix: "Assign the user (or a group) to the app under Enterprise applications > Users and groups, or turn off \"Assignment required\".",
    },
    Explanation {
        code: 90094,
        meaning: "Administrator consent is required.",
        fix: "Ask a tenant administrator to grant consent under API permissions.",
    },
    Explanation {
        code: 90095,
        meaning: "Administrator consent is required.",
        fix: "Ask a tenant administrator to grant consent under API permissions.",
    },
    Explanation {
        code: 50020,
        meaning: "The user's account is not in this tenant (guest not invited, or wrong tenant).",
        fix: "Invite the user as a guest, or use oidc.tenant = \"organizations\" with allowed_tenants for a multi-tenant app.",
    },
    Explanation {
        code: 50034,
        meaning: "The user account does not exist in this directory.",
        fix: "Check the user name and the tenant in oidc.tenant.",
    },
    Explanation {
        code: 16000,
        meaning: "The account is not in the tenant the app signs in to.",
        fix: "Sign in with an account of the configured tenant, or invite the user.",
    },
    Explanation {
        code: 53003,
        meaning: "A Conditional Access policy blocked the sign-in.",
        fix: "Ask the tenant administrator which Conditional Access policy applies (see the sign-in logs with the correlation id).",
    },
    Explanation {
        code: 50076,
        meaning: "Multi-factor authentication is required.",
        fix: "Complete MFA; nothing to change in aadgate.",
    },
    Explanation {
        code: 50079,
        meaning: "The user must register for multi-factor authentication.",
        fix: "Register MFA methods at https://aka.ms/mfasetup.",
    },
    Explanation {
        code: 50058,
        meaning: "No user is signed in at the identity provider.",
        fix: "Start the sign-in again interactively.",
    },
    Explanation {
        code: 90002,
        meaning: "The tenant was not found (wrong tenant or wrong cloud).",
        fix: "Check oidc.tenant and oidc.cloud (public, usgov, china).",
    },
    Explanation {
        code: 7000215,
        meaning: "The client secret is invalid.",
        fix: "Copy the secret's Value (not its ID) into AADGATE_OIDC_CLIENT_SECRET.",
    },
    Explanation {
        code: 7000222,
        meaning: "The client secret has expired.",
        fix: "Create a new secret under Certificates & secrets and update AADGATE_OIDC_CLIENT_SECRET.",
    },
    Explanation {
        code: 700016,
        meaning: "The application was not found in the tenant.",
        fix: "Check oidc.client_id and oidc.tenant; the app may be registered in another tenant.",
    },
    Explanation {
        code: 50194,
        meaning: "A single-tenant app was used with the /common endpoint.",
        fix: "Set oidc.tenant to your tenant ID or domain instead of \"common\".",
    },
    Explanation {
        code: 54005,
        meaning: "The authorization code was already used.",
        fix: "Start the sign-in again; do not reload the callback page.",
    },
    Explanation {
        code: 700082,
        meaning: "The refresh token has expired.",
        fix: "Sign in again.",
    },
    Explanation {
        code: 50173,
        meaning: "The refresh token is no longer valid (password changed or revoked).",
        fix: "Sign in again.",
    },
];

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
pub fn explain(code: u32) -> Option<Explanation> {
    TABLE.iter().copied().find(|e| e.code == code)
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
}
