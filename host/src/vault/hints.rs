//! What a Vault error usually means, for the messages Vault leaves terse.

/// A hint for Vault's error text, if the cause is a known one.
pub fn hint_for(vault_error: &str) -> Option<&'static str> {
    const HINTS: &[(&str, &str)] = &[
        (
            "invalid issuer (iss) claim",
            "bound_issuer in the auth method's config must equal the token's iss exactly: https://confidentialcomputing.googleapis.com, with no trailing slash",
        ),
        (
            "error converting claim",
            "claim_mappings only maps string claims; remove list claims such as support_attributes or google_service_accounts from it",
        ),
        (
            "does not match any associated bound claim values",
            "compare the role's bound_claims with the token's claims (`attestgate verify --config` shows each rule); look for stray spaces in bound values",
        ),
        (
            "invalid audience (aud) claim",
            "the role's bound_audiences must include the audience this collaborator's plugin selects",
        ),
        (
            "audience claim found in JWT but no audiences bound",
            "set bound_audiences on the role to this collaborator's audience",
        ),
        (
            "failed to verify id token signature",
            "the auth method's jwks_url (or keys) must be the issuer's; check that it points at the Confidential Space JWKS",
        ),
        ("could not be found", "create the role, or fix `role` in [collaborator.vault] (or the plugin's login role)"),
        ("token is expired", "the attestation token expired before it reached Vault; check the clocks of the TEE and the Vault server"),
        ("invalid subject (sub) claim", "bound_subject pins one VM instance; a re-created VM has another subject"),
        ("permission denied", "the Vault token's policies do not allow this path (or the token has expired)"),
    ];
    HINTS
        .iter()
        .find(|(needle, _)| vault_error.contains(needle))
        .map(|(_, hint)| *hint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seeds_four_mistakes_each_get_their_fix() {
        let cases = [
            ("error validating token: invalid issuer (iss) claim", "no trailing slash"),
            ("error converting claim 'support_attributes' to string", "claim_mappings only maps string claims"),
            ("claim \"/submods/container/image_digest\" does not match any associated bound claim values", "stray spaces"),
            ("error validating claims: invalid subject (sub) claim", "re-created VM"),
        ];
        for (vault_said, fix) in cases {
            let hint = hint_for(vault_said).unwrap_or_else(|| panic!("no hint for {vault_said}"));
            assert!(hint.contains(fix), "{vault_said} -> {hint}");
        }
    }

    #[test]
    fn an_unknown_error_gets_no_guess() {
        assert_eq!(hint_for("internal error"), None);
        assert_eq!(hint_for(""), None);
    }
}
