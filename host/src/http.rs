//! What every HTTP client attestgate builds has in common: which CAs it trusts, no redirects,
//! bounded response bodies, and server text made safe to show.
//!
//! Every server attestgate talks to may be hostile (a collaborator runs its own Vault). A
//! redirect would re-send a token wherever the server points, a body without end would exhaust
//! memory before any size check, and an error text that echoes the request would put the
//! credential on stderr, so all three are handled here, once.

use std::sync::{Arc, OnceLock};

/// Which certificate authorities an HTTP client trusts.
pub(crate) enum Trust<'a> {
    /// The system's root store (public services such as Google's), loaded once per
    /// [`SystemRoots`] however many clients trust it.
    SystemRoots(&'a SystemRoots),
    /// Only these CAs (a pinned private CA: VAULT_CACERT semantics).
    Only(Vec<reqwest::Certificate>),
    /// None: the client only speaks plain HTTP.
    PlainHttp,
}

/// The system's root certificates (`SSL_CERT_FILE`, `SSL_CERT_DIR`, or the distribution's
/// bundle), read at the first client that needs them and shared by every client built from the
/// same handle (clones share it).
///
/// Reading and parsing the bundle costs 3-4 ms, and a client built without roots of its own
/// (reqwest's platform verifier) reads it again for each client: an exchange trusting public CAs
/// builds one client for Google's keys and one per collaborator's Vault and KMS. The trust is the
/// same: on Linux (and the other Unix systems but Apple's) the platform verifier is webpki over
/// these very certificates. Elsewhere the platform verifier is the operating system's own
/// (revocation, Certificate Transparency, distrust dates), and each client keeps it. An exchange,
/// or one generation of the agent, holds one handle, so a reload picks up a changed bundle.
#[derive(Clone, Default)]
pub struct SystemRoots {
    loaded: Arc<OnceLock<Arc<[reqwest::Certificate]>>>,
}

impl std::fmt::Debug for SystemRoots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = self.loaded.get().map(|certs| certs.len());
        f.debug_struct("SystemRoots")
            .field("loaded", &count)
            .finish()
    }
}

impl SystemRoots {
    /// The root certificates, read on the first call. A certificate webpki cannot use as a
    /// trust anchor is left out, as the platform verifier leaves it out.
    fn certificates(&self) -> Arc<[reqwest::Certificate]> {
        let certificates = self.loaded.get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            // What the platform verifier warned about, the operator still hears.
            for error in &found.errors {
                tracing::warn!("reading the system's root certificates: {error}");
            }
            let usable: Arc<[reqwest::Certificate]> = found
                .certs
                .iter()
                .filter(|der| webpki::anchor_from_trusted_cert(der).is_ok())
                .filter_map(|der| reqwest::Certificate::from_der(der).ok())
                .collect();
            let ignored = found.certs.len() - usable.len();
            if ignored > 0 {
                tracing::warn!("{ignored} of the system's root certificates cannot be trust anchors and were ignored");
            }
            tracing::debug!(
                certificates = usable.len(),
                "loaded the system's root certificates"
            );
            usable
        });
        Arc::clone(certificates)
    }
}

/// Whether reqwest's platform verifier is webpki over `rustls-native-certs`' store here (its own
/// condition), so that handing clients the store read once trusts exactly the same.
const SHARED_ROOTS_ARE_THE_PLATFORMS: bool = cfg!(all(
    unix,
    not(target_os = "android"),
    not(target_vendor = "apple")
));

/// An HTTP client builder with `trust` applied.
///
/// Redirects are never followed: a redirect would re-send a token or credential to wherever the
/// server points (a 307 re-posts the body), and no API attestgate calls needs one.
pub(crate) fn client_builder(trust: Trust<'_>) -> reqwest::ClientBuilder {
    let builder = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
    match trust {
        // Where the platform verifier is not webpki over this store, each client keeps it.
        Trust::SystemRoots(_) if !SHARED_ROOTS_ARE_THE_PLATFORMS => builder,
        Trust::SystemRoots(roots) => {
            let certificates = roots.certificates();
            if certificates.is_empty() {
                // Nothing readable: reqwest's own verifier then refuses to build the client
                // with its error ("No CA certificates were loaded from the system").
                builder
            } else {
                builder.tls_certs_only(certificates.iter().cloned())
            }
        }
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
    // Control characters are U+0000–U+001F, U+007F and U+0080–U+009F (UTF-8 0xC2 0x80–0x9F): a
    // byte scan with none of those lead bytes proves there is nothing to escape without decoding
    // every character (that decoding was 2.5% of a plugin call, on nine reasons).
    let may_have_control = text.bytes().any(|b| b < 0x20 || b == 0x7f || b == 0xc2);
    if !may_have_control || !text.chars().any(char::is_control) {
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
    /// abort a process on a freshly booted VM. The switch reached this crate, and what it does
    /// shows in this very binary, which links aws-lc: none of the jitterentropy library's
    /// `jent_*` functions is in it (built with `AWS_LC_SYS_NO_JITTER_ENTROPY=0`, this test
    /// binary held 54 of them, and the test failed: measured).
    #[test]
    fn aws_lc_is_built_without_its_cpu_jitter_entropy_source() {
        assert_eq!(option_env!("AWS_LC_SYS_NO_JITTER_ENTROPY"), Some("1"));
        let binary = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        // The symbol table's names are NUL-terminated.
        let names = || binary.split(|byte| *byte == 0);
        assert!(
            names().any(|name| name.starts_with(b"aws_lc_")),
            "this binary links aws-lc"
        );
        assert!(
            !names().any(|name| name.starts_with(b"jent_")),
            "aws-lc's CPU-jitter entropy source is linked in"
        );
    }

    /// Every client built from one handle (or its clones) gets the same certificates, read
    /// once; another handle reads the store again (a new exchange, an agent reload).
    #[test]
    fn clones_of_one_system_roots_handle_read_the_store_once() {
        let roots = SystemRoots::default();
        let first = roots.clone().certificates();
        assert!(Arc::ptr_eq(&first, &roots.certificates()));
        assert!(!Arc::ptr_eq(&first, &SystemRoots::default().certificates()));
    }

    /// The byte scan that skips decoding never lets a control character through: every
    /// character, alone and inside text, is escaped exactly when it is a control character.
    #[test]
    fn every_control_character_is_escaped_and_nothing_else() {
        for c in (0..=0x10FFFF_u32).filter_map(char::from_u32) {
            let text = format!("reason {c} text");
            let escaped = escape_control(&text);
            let changed = matches!(escaped, std::borrow::Cow::Owned(_));
            assert_eq!(changed, c.is_control(), "U+{:04X}", c as u32);
            if changed {
                assert!(!escaped.chars().any(char::is_control), "U+{:04X}", c as u32);
            }
        }
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
