//! Audiences as relying parties compare them.
//!
//! A token is only as private as its audience. Two collaborators whose audiences differ only by
//! case, a trailing slash, a default port or Google's `//iam.googleapis.com/…` shorthand would
//! receive tokens that the same Vault role or the same workload identity provider accepts, so
//! uniqueness is checked on the normalised form, never on the raw text.

use super::source::DEFAULT_TOKEN_AUDIENCE;

/// An audience in the form relying parties compare: scheme and host lowercased, the default port
/// dropped, trailing slashes of the path removed, and a scheme-relative `//host/…` (Google's
/// resource-name form) read as `https://host/…`. Text that is not a URL is only trimmed.
pub fn normalise(audience: &str) -> String {
    let text = audience.trim();
    let absolute = match text.strip_prefix("//") {
        Some(rest) => format!("https://{rest}"),
        None => text.to_owned(),
    };
    let Ok(mut url) = url::Url::parse(&absolute) else {
        return text.to_owned();
    };
    if url.cannot_be_a_base() {
        return text.to_owned();
    }
    // `Url` already lowercases scheme and host and drops a default port; a fully qualified
    // host's trailing dot names the same host.
    if let Some(host) = url
        .host_str()
        .and_then(|h| h.strip_suffix('.'))
        .map(str::to_owned)
    {
        let _ = url.set_host(Some(&host));
    }
    let path = url.path().trim_end_matches('/').to_owned();
    url.set_path(&path);
    let mut normal = url.to_string();
    if url.query().is_none() && url.fragment().is_none() {
        while normal.ends_with('/') {
            normal.pop();
        }
    }
    normal
}

/// The host of a URL-shaped audience, lowercased.
fn host(audience: &str) -> Option<String> {
    let normal = normalise(audience);
    url::Url::parse(&normal)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
}

/// Whether Google's STS, or a workload identity provider behind it, might accept a token with
/// this audience: the default token's audience, and anything on Google's API domain (providers
/// accept their own `iam.googleapis.com` resource name by default; private service connect names
/// are other `googleapis.com` hosts).
pub fn is_google_federation(audience: &str) -> bool {
    normalise(audience) == normalise(DEFAULT_TOKEN_AUDIENCE)
        || host(audience).is_some_and(|h| h == "googleapis.com" || h.ends_with(".googleapis.com"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_relying_parties_treat_as_one_normalise_alike() {
        let same = [
            "https://vault.bank-b.example",
            "https://vault.bank-b.example/",
            "HTTPS://Vault.Bank-B.Example",
            "https://vault.bank-b.example:443",
            "https://vault.bank-b.example:443//",
            " https://vault.bank-b.example ",
        ];
        for spelling in same {
            assert_eq!(
                normalise(spelling),
                "https://vault.bank-b.example",
                "{spelling}"
            );
        }
        let provider = "projects/1/locations/global/workloadIdentityPools/p/providers/x";
        assert_eq!(
            normalise(&format!("//iam.googleapis.com/{provider}")),
            normalise(&format!("https://iam.googleapis.com/{provider}/"))
        );
    }

    #[test]
    fn different_audiences_stay_different() {
        assert_ne!(
            normalise("https://vault.bank-b.example/A"),
            normalise("https://vault.bank-b.example/a"),
            "paths are case-sensitive"
        );
        assert_ne!(
            normalise("https://vault.bank-b.example:8200"),
            normalise("https://vault.bank-b.example")
        );
        assert_ne!(
            normalise("http://vault.bank-b.example"),
            normalise("https://vault.bank-b.example")
        );
        assert_eq!(normalise("bank-a"), "bank-a");
    }

    #[test]
    fn google_federation_audiences_are_recognised_in_every_spelling() {
        for audience in [
            "https://sts.googleapis.com",
            "https://STS.googleapis.com/",
            "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/x",
            "https://iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/x",
        ] {
            assert!(is_google_federation(audience), "{audience}");
        }
        assert!(is_google_federation("https://sts.googleapis.com./"));
        assert!(is_google_federation("https://sts-psc.p.googleapis.com"));
        assert!(!is_google_federation("https://vault.bank-a.example"));
        assert!(!is_google_federation(
            "https://sts.googleapis.com.evil.example"
        ));
    }
}
