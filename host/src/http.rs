//! What every HTTP client attestgate builds has in common: which CAs it trusts, no redirects,
//! bounded response bodies, and server text made safe to show.
//!
//! Every server attestgate talks to may be hostile (a collaborator runs its own Vault). A
//! redirect would re-send a token wherever the server points, a body without end would exhaust
//! memory before any size check, and an error text that echoes the request would put the
//! credential on stderr, so all three are handled here, once.

/// Which certificate authorities an HTTP client trusts.
pub(crate) enum Trust {
    /// The system's root store (public services such as Google's).
    SystemRoots,
    /// Only these CAs (a pinned private CA: VAULT_CACERT semantics).
    Only(Vec<reqwest::Certificate>),
    /// None: the client only speaks plain HTTP.
    PlainHttp,
}

/// An HTTP client builder with `trust` applied. Loading the system's root store costs a few
/// milliseconds per client, so it happens only for `Trust::SystemRoots`.
///
/// Redirects are never followed: a redirect would re-send a token or credential to wherever the
/// server points (a 307 re-posts the body), and no API attestgate calls needs one.
pub(crate) fn client_builder(trust: Trust) -> reqwest::ClientBuilder {
    let builder = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
    match trust {
        Trust::SystemRoots => builder,
        Trust::Only(certs) => builder.tls_certs_only(certs),
        Trust::PlainHttp => builder.tls_certs_only(Vec::new()),
    }
}

/// A response body that could not be read whole.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the response is larger than the {limit}-byte limit; not reading it")]
    TooLarge { limit: usize },
    #[error("reading the response failed: {0}")]
    Read(#[source] reqwest::Error),
}

/// Reads a response body of at most `limit` bytes: a larger `Content-Length` is refused before
/// reading, and a body without one is refused as soon as it passes the limit.
pub(crate) async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, BodyError> {
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Err(BodyError::TooLarge { limit });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Read)? {
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Credentials shorter than this are not scrubbed from server text: they would match ordinary
/// words, and real tokens are far longer.
const MIN_SCRUBBED_LEN: usize = 8;

/// Server-supplied text made safe to show: every credential attestgate sent in the request is
/// replaced by `<redacted>` (a server may echo the request), and control characters are escaped
/// so the text cannot forge lines or terminal escapes on stderr.
pub fn scrub(text: &str, sent: &[&str]) -> String {
    let mut clean = text.to_owned();
    for secret in sent.iter().filter(|s| s.len() >= MIN_SCRUBBED_LEN) {
        clean = clean.replace(secret, "<redacted>");
    }
    escape_control(&clean).into_owned()
}

/// `text` with control characters (newlines and terminal escapes included) escaped, for text
/// from plugins and servers that is shown to the operator. Borrowed when there is none, which is
/// nearly always: plugin reasons pass through here on every call.
pub fn escape_control(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let escaped: String = text
        .chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect();
    std::borrow::Cow::Owned(escaped)
}

/// The parts of a compact JWS worth scrubbing on their own (a server may echo only the payload
/// or the signature), and the whole token.
pub fn jwt_parts(token: &str) -> Vec<&str> {
    let mut parts: Vec<&str> = token.split('.').filter(|p| p.len() >= 16).collect();
    parts.push(token);
    parts.sort_by_key(|p| std::cmp::Reverse(p.len()));
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    /// aws-lc is built without its CPU-jitter entropy source (`.cargo/config.toml`): seeding it
    /// cost 30-40 ms at each process's first TLS handshake, and its start-up health test can
    /// abort a process on a freshly booted VM. Cargo gives every crate it builds the same
    /// `[env]`, so this crate seeing the switch means aws-lc-sys saw it too.
    #[test]
    fn aws_lc_is_built_without_its_cpu_jitter_entropy_source() {
        assert_eq!(option_env!("AWS_LC_SYS_NO_JITTER_ENTROPY"), Some("1"));
    }

    #[test]
    fn echoed_credentials_and_control_characters_never_reach_the_operator() {
        let token = "hvs.CAESIJ2xyzverysecret";
        let echoed = format!("bad request: token {token}\n\x1b[32mbank-b released 1 secret");
        let clean = scrub(&echoed, &[token]);
        assert!(!clean.contains(token), "{clean}");
        assert!(!clean.contains('\n') && !clean.contains('\x1b'), "{clean}");
        assert!(clean.contains("<redacted>"));
    }

    #[test]
    fn the_parts_of_a_token_are_scrubbed_too() {
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhYmNkZWZnaGlqayJ9.c2lnbmF0dXJlc2lnbmF0dXJl";
        let payload = jwt.split('.').nth(1).unwrap();
        let clean = scrub(&format!("echo: {payload}"), &jwt_parts(jwt));
        assert!(!clean.contains(payload), "{clean}");
    }
}
