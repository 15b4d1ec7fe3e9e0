//! The issuer's signing keys: where they come from, and a cache that survives issuer outages.
//!
//! Keys are fetched once and cached. A token naming an unknown `kid` triggers a refetch, at most
//! once per `refetch_interval`, so a flood of forged tokens cannot turn attestgate into a load
//! generator against the issuer. When a refetch fails, the keys already cached keep working.

use super::rsa::{RsaKeyError, RsaPublicKey};
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Bodies larger than this are not a JWKS or discovery document.
const MAX_DOCUMENT_BYTES: usize = 1 << 20;

/// Where the issuer's signing keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// An OIDC discovery document; its `jwks_uri` is followed and its `issuer` must match.
    Discovery(String),
    /// A JWKS fetched directly from this URL, without discovery.
    JwksUrl(String),
    /// A JWKS on disk, re-read whenever an unknown `kid` shows up.
    JwksFile(PathBuf),
    /// A JWKS given as JSON text (tests, air-gapped audits).
    Inline(String),
}

impl std::fmt::Display for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::Discovery(url) => write!(f, "discovery document {url}"),
            KeySource::JwksUrl(url) => write!(f, "JWKS {url}"),
            KeySource::JwksFile(path) => write!(f, "JWKS file {}", path.display()),
            KeySource::Inline(_) => f.write_str("inline JWKS"),
        }
    }
}

/// Why the issuer's signing key for a token is not available.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key set could not be fetched or read; the verifier cannot do its job (worth a retry).
    #[error("could not fetch signing keys from {source_name}: {source}")]
    Fetch {
        /// The key source (or the URL fetched), as shown to the operator.
        source_name: String,
        /// Why fetching it failed.
        #[source]
        source: KeyFetchError,
    },
    /// A key set or discovery document arrived but cannot be used.
    #[error("{source_name} is not a usable key set: {source}")]
    Invalid {
        /// The document, as shown to the operator.
        source_name: String,
        /// What is wrong with it.
        #[source]
        source: InvalidKeySet,
    },
    /// The token names a key the issuer does not publish (or no longer does).
    #[error(
        "no signing key with kid \"{kid}\" (known kids: [{}]); {refetch}",
        known.join(", ")
    )]
    UnknownKid {
        /// The token's `kid`.
        kid: String,
        /// The kids cached, sorted.
        known: Vec<String>,
        /// Whether fresh keys were asked for, and how that went.
        #[source]
        refetch: RefetchOutcome,
    },
}

/// Why a key set could not be fetched or read.
#[derive(Debug, thiserror::Error)]
pub enum KeyFetchError {
    /// The HTTP client could not be built (TLS roots).
    #[error("cannot build an HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// The JWKS file cannot be read.
    #[error("{0}")]
    ReadFile(#[source] std::io::Error),
    /// The request failed: DNS, connection, TLS, timeout.
    #[error("{0}")]
    Request(#[source] reqwest::Error),
    /// The response is larger than a key set can be.
    #[error("the response is larger than the {limit}-byte limit; not reading it")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The connection broke while the response was read.
    #[error("reading the response failed: {0}")]
    ReadBody(#[source] reqwest::Error),
    /// The server answered with an error status.
    #[error("HTTP {status}: {said}")]
    Status {
        /// The HTTP status.
        status: reqwest::StatusCode,
        /// The start of the server's body, control characters escaped.
        said: String,
    },
    /// The response is not text.
    #[error("response is not UTF-8")]
    NotUtf8(#[source] std::str::Utf8Error),
}

impl KeyFetchError {
    fn body(error: crate::http::BodyError) -> Self {
        match error {
            crate::http::BodyError::TooLarge { limit } => KeyFetchError::TooLarge { limit },
            crate::http::BodyError::Read(e) => KeyFetchError::ReadBody(e),
        }
    }
}

/// What makes a JWKS or discovery document unusable.
#[derive(Debug, thiserror::Error)]
pub enum InvalidKeySet {
    /// The document does not parse as JSON.
    #[error("not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    /// A JWKS without its `keys` array.
    #[error("it has no \"keys\" array")]
    NoKeysArray,
    /// An RSA signing key whose `n` or `e` cannot be decoded.
    #[error("key \"{kid}\" has invalid RSA components: {source}")]
    BadRsaKey {
        /// The key's `kid`.
        kid: String,
        /// What the decoder said.
        #[source]
        source: RsaKeyError,
    },
    /// No key of the set could ever verify a token.
    #[error("it contains no RSA signing key with a kid")]
    NoUsableKey,
    /// A discovery document that speaks for another issuer.
    #[error("its issuer is \"{found}\" but tokens are expected from \"{expected}\"")]
    IssuerMismatch {
        /// The document's `issuer` (empty when it has none).
        found: String,
        /// The issuer the verifier requires.
        expected: String,
    },
    /// A discovery document that does not say where the keys are.
    #[error("it has no \"jwks_uri\"")]
    NoJwksUri,
    /// A discovery document fetched over HTTPS that sends the key fetch over plain HTTP.
    #[error("its jwks_uri {uri} is plain HTTP while the document itself came over HTTPS: keys fetched in clear text can be substituted on the way")]
    JwksUriInsecure {
        /// The `jwks_uri`.
        uri: String,
    },
    /// A discovery document whose keys live outside its own host's domain.
    #[error("its jwks_uri {uri} is outside the domain of the document's host {host}: a tampered discovery document could point at anyone's keys")]
    JwksUriElsewhere {
        /// The `jwks_uri`.
        uri: String,
        /// The discovery document's host.
        host: String,
    },
}

/// Where a discovery document may send the key fetch: over HTTPS if it came over HTTPS, and to
/// its own host or a host of the same parent domain (Google's
/// `confidentialcomputing.googleapis.com` names keys on `www.googleapis.com`); an IP address
/// only to itself.
pub(crate) fn check_jwks_uri(discovery: &str, jwks_uri: &str) -> Result<(), InvalidKeySet> {
    let elsewhere = |host: &str| InvalidKeySet::JwksUriElsewhere {
        uri: jwks_uri.to_owned(),
        host: host.to_owned(),
    };
    let (Ok(from), Ok(to)) = (url::Url::parse(discovery), url::Url::parse(jwks_uri)) else {
        return Err(elsewhere(discovery));
    };
    if from.scheme() == "https" && to.scheme() != "https" {
        return Err(InvalidKeySet::JwksUriInsecure {
            uri: jwks_uri.to_owned(),
        });
    }
    let from_host = from.host_str().unwrap_or_default().to_ascii_lowercase();
    let to_host = to.host_str().unwrap_or_default().to_ascii_lowercase();
    if from_host == to_host {
        return Ok(());
    }
    let is_name = matches!(from.host(), Some(url::Host::Domain(_)))
        && matches!(to.host(), Some(url::Host::Domain(_)));
    // The parent domain: the host without its first label, if that leaves at least two labels.
    let parent = from_host
        .split_once('.')
        .map(|(_, rest)| rest)
        .filter(|rest| rest.contains('.'));
    match parent {
        Some(parent)
            if is_name && (to_host == parent || to_host.ends_with(&format!(".{parent}"))) =>
        {
            Ok(())
        }
        _ => Err(elsewhere(&from_host)),
    }
}

/// What happened when an unknown `kid` asked for fresh keys.
#[derive(Debug, thiserror::Error)]
pub enum RefetchOutcome {
    /// The keys were refetched and the kid still is not among them.
    #[error("the key set was refetched and does not have it either")]
    Refetched,
    /// The last fetch was too recent; the rate limit kept the issuer from being asked again.
    #[error(
        "keys were fetched {:.1}s ago, so no refetch was attempted (rate limit)",
        last_fetch_ago.as_secs_f64()
    )]
    Suppressed {
        /// How long ago the last fetch was.
        last_fetch_ago: Duration,
    },
    /// The refetch failed; the cached keys were kept.
    #[error("refetching the key set failed ({0}); cached keys were kept")]
    Failed(#[source] Box<KeyError>),
}

/// How the key cache fetches, and how often it may.
#[derive(Debug, Clone)]
pub struct KeyCacheOptions {
    /// Minimum time between two fetches triggered by unknown kids (default 30 s): a flood of
    /// forged kids cannot make attestgate hammer the issuer.
    pub refetch_interval: Duration,
    /// Limit on each HTTP request for discovery or keys (default 10 s).
    pub http_timeout: Duration,
    /// When set, a discovery document must name exactly this issuer.
    pub expected_issuer: Option<String>,
    /// The system's root certificates, for an `https` key source; share one handle between the
    /// clients of one exchange.
    pub system_roots: crate::http::SystemRoots,
}

impl Default for KeyCacheOptions {
    fn default() -> Self {
        KeyCacheOptions {
            refetch_interval: Duration::from_secs(30),
            http_timeout: Duration::from_secs(10),
            expected_issuer: None,
            system_roots: crate::http::SystemRoots::default(),
        }
    }
}

#[derive(Default)]
struct FetchState {
    last_attempt: Option<Instant>,
    /// What a [`JwksCache::prefetch`] found, until the first lookup that misses the cache
    /// accounts for it (a later fetch forgets it).
    prefetch: Option<Box<Prefetched>>,
}

/// A prefetch's outcome: when it ended, and its failure if it failed.
struct Prefetched {
    ended: Instant,
    failure: Option<KeyError>,
}

/// The issuer's signing keys, fetched from a [`KeySource`] and kept by `kid`. Shared by every
/// verification; cheap to query, and refetched (rate-limited) only for unknown kids.
pub struct JwksCache {
    source: KeySource,
    options: KeyCacheOptions,
    http: reqwest::Client,
    keys: RwLock<HashMap<String, Arc<RsaPublicKey>>>,
    fetch: tokio::sync::Mutex<FetchState>,
}

impl JwksCache {
    /// An empty cache for `source`; nothing is fetched until the first key is asked for (or
    /// [`JwksCache::refresh`], [`JwksCache::prefetch`]). Fails only if the HTTP client cannot be
    /// built.
    pub fn new(source: KeySource, options: KeyCacheOptions) -> Result<Self, KeyError> {
        let trust = match &source {
            KeySource::JwksUrl(url) if url.starts_with("http://") => crate::http::Trust::PlainHttp,
            KeySource::JwksUrl(_) | KeySource::Discovery(_) => {
                crate::http::Trust::SystemRoots(&options.system_roots)
            }
            KeySource::JwksFile(_) | KeySource::Inline(_) => crate::http::Trust::PlainHttp,
        };
        let builder = crate::http::client_builder(trust).timeout(options.http_timeout);
        let http = builder.build().map_err(|e| KeyError::Fetch {
            source_name: source.to_string(),
            source: KeyFetchError::Client(e),
        })?;
        Ok(JwksCache {
            source,
            options,
            http,
            keys: RwLock::new(HashMap::new()),
            fetch: tokio::sync::Mutex::new(FetchState::default()),
        })
    }

    /// Where the keys come from.
    pub fn source(&self) -> &KeySource {
        &self.source
    }

    /// The kids currently cached, sorted.
    pub fn known_kids(&self) -> Vec<String> {
        let mut kids: Vec<String> = self.read_keys().keys().cloned().collect();
        kids.sort();
        kids
    }

    fn read_keys(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<RsaPublicKey>>> {
        self.keys
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Fetches the key set now, replacing the cache on success. Returns the number of keys.
    pub async fn refresh(&self) -> Result<usize, KeyError> {
        let mut state = self.fetch.lock().await;
        self.fetch_into_cache(&mut state).await
    }

    /// Fetches the key set ahead of the first lookup, e.g. while plugins compile, so that the
    /// first verification finds its key cached. A lookup that comes while the prefetch is under
    /// way waits for it and takes its outcome as its own fetch's: the same error, or the same
    /// "refetched, and the kid is not there", as if it had fetched itself. A prefetch that failed
    /// before any lookup came does not count: the first lookup fetches afresh (once; after that
    /// the rate limit applies as always). Does nothing once anything was fetched.
    pub async fn prefetch(&self) {
        let mut state = self.fetch.lock().await;
        if state.last_attempt.is_some() {
            return;
        }
        let failure = self.fetch_into_cache(&mut state).await.err();
        state.prefetch = Some(Box::new(Prefetched {
            ended: Instant::now(),
            failure,
        }));
    }

    async fn fetch_into_cache(&self, state: &mut FetchState) -> Result<usize, KeyError> {
        state.last_attempt = Some(Instant::now());
        state.prefetch = None;
        let keys = self.load().await?;
        let count = keys.len();
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = keys;
        Ok(count)
    }

    /// The key for `kid`, refetching (rate-limited) when it is not cached.
    pub async fn key(&self, kid: &str) -> Result<Arc<RsaPublicKey>, KeyError> {
        if let Some(key) = self.read_keys().get(kid) {
            return Ok(key.clone());
        }
        let arrived = Instant::now();
        let mut state = self.fetch.lock().await;
        // Another task may have refetched while this one waited for the lock.
        if let Some(key) = self.read_keys().get(kid) {
            return Ok(key.clone());
        }
        if let Some(prefetched) = state.prefetch.take() {
            let waited_for_it = prefetched.ended >= arrived;
            match prefetched.failure {
                Some(failure) if waited_for_it => return Err(failure),
                None if waited_for_it => {
                    return Err(KeyError::UnknownKid {
                        kid: kid.to_owned(),
                        known: self.known_kids(),
                        refetch: RefetchOutcome::Refetched,
                    })
                }
                // It failed before this lookup came: not this lookup's fetch, so fetch afresh.
                Some(_) => state.last_attempt = None,
                None => {}
            }
        }
        let refetch = match state.last_attempt.map(|t| t.elapsed()) {
            Some(ago) if ago < self.options.refetch_interval => RefetchOutcome::Suppressed {
                last_fetch_ago: ago,
            },
            _ => match self.fetch_into_cache(&mut state).await {
                Ok(_) => {
                    if let Some(key) = self.read_keys().get(kid) {
                        return Ok(key.clone());
                    }
                    RefetchOutcome::Refetched
                }
                // With nothing cached there is no kid question to answer: the keys are unavailable.
                Err(e) if self.read_keys().is_empty() => return Err(e),
                Err(e) => RefetchOutcome::Failed(Box::new(e)),
            },
        };
        Err(KeyError::UnknownKid {
            kid: kid.to_owned(),
            known: self.known_kids(),
            refetch,
        })
    }

    async fn load(&self) -> Result<HashMap<String, Arc<RsaPublicKey>>, KeyError> {
        let (name, document) = match &self.source {
            KeySource::Inline(text) => (self.source.to_string(), text.clone()),
            KeySource::JwksFile(path) => {
                let text = tokio::fs::read_to_string(path)
                    .await
                    .map_err(|e| KeyError::Fetch {
                        source_name: self.source.to_string(),
                        source: KeyFetchError::ReadFile(e),
                    })?;
                (self.source.to_string(), text)
            }
            KeySource::JwksUrl(url) => (format!("JWKS {url}"), self.get(url).await?),
            KeySource::Discovery(url) => {
                let jwks_uri = self.jwks_uri_from_discovery(url).await?;
                (format!("JWKS {jwks_uri}"), self.get(&jwks_uri).await?)
            }
        };
        parse_jwks(&document).map_err(|source| KeyError::Invalid {
            source_name: name,
            source,
        })
    }

    async fn jwks_uri_from_discovery(&self, url: &str) -> Result<String, KeyError> {
        let invalid = |source: InvalidKeySet| KeyError::Invalid {
            source_name: format!("discovery document {url}"),
            source,
        };
        let text = self.get(url).await?;
        jwks_uri_of(url, &text, self.options.expected_issuer.as_deref()).map_err(invalid)
    }

    async fn get(&self, url: &str) -> Result<String, KeyError> {
        let fail = |source: KeyFetchError| KeyError::Fetch {
            source_name: url.to_owned(),
            source,
        };
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| fail(KeyFetchError::Request(e)))?;
        let status = response.status();
        let body = crate::http::read_capped(response, MAX_DOCUMENT_BYTES)
            .await
            .map_err(|e| fail(KeyFetchError::body(e)))?;
        if !status.is_success() {
            let said = crate::http::scrub(String::from_utf8_lossy(&body).trim(), &[]);
            return Err(fail(KeyFetchError::Status {
                status,
                said: said.chars().take(500).collect(),
            }));
        }
        String::from_utf8(body).map_err(|e| fail(KeyFetchError::NotUtf8(e.utf8_error())))
    }
}

/// The `jwks_uri` of the discovery document `text`, fetched from `url`: its `issuer` must be the
/// expected one, and the URI must pass [`check_jwks_uri`].
pub fn jwks_uri_of(
    url: &str,
    text: &str,
    expected_issuer: Option<&str>,
) -> Result<String, InvalidKeySet> {
    let doc: Value = serde_json::from_str(text).map_err(InvalidKeySet::NotJson)?;
    if let Some(expected) = expected_issuer {
        let found = doc.get("issuer").and_then(Value::as_str).unwrap_or("");
        if found != expected {
            return Err(InvalidKeySet::IssuerMismatch {
                found: found.to_owned(),
                expected: expected.to_owned(),
            });
        }
    }
    let jwks_uri = doc
        .get("jwks_uri")
        .and_then(Value::as_str)
        .ok_or(InvalidKeySet::NoJwksUri)?;
    check_jwks_uri(url, jwks_uri)?;
    Ok(jwks_uri.to_owned())
}

/// Extracts the RSA signing keys of a JWKS. Keys of other types or uses are skipped; a set with no
/// usable key at all is an error, because it can never verify anything.
pub fn parse_jwks(text: &str) -> Result<HashMap<String, Arc<RsaPublicKey>>, InvalidKeySet> {
    let doc: Value = serde_json::from_str(text).map_err(InvalidKeySet::NotJson)?;
    let keys = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or(InvalidKeySet::NoKeysArray)?;
    let mut usable = HashMap::new();
    for key in keys {
        let field = |name: &str| key.get(name).and_then(Value::as_str);
        let is_rsa = field("kty") == Some("RSA");
        let for_signing = matches!(field("use"), None | Some("sig"));
        let rs256 = matches!(field("alg"), None | Some("RS256"));
        let (Some(kid), Some(n), Some(e)) = (field("kid"), field("n"), field("e")) else {
            continue;
        };
        if !(is_rsa && for_signing && rs256) {
            continue;
        }
        let decoding =
            RsaPublicKey::from_jwk_components(n, e).map_err(|source| InvalidKeySet::BadRsaKey {
                kid: kid.to_owned(),
                source,
            })?;
        usable.insert(kid.to_owned(), Arc::new(decoding));
    }
    if usable.is_empty() {
        return Err(InvalidKeySet::NoUsableKey);
    }
    Ok(usable)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An issuer on loopback that counts requests and answers each with `jwks` only when told.
    #[cfg(feature = "dev")]
    struct HeldIssuer {
        url: String,
        requests: Arc<std::sync::atomic::AtomicUsize>,
        answer: tokio::sync::mpsc::UnboundedSender<()>,
    }

    #[cfg(feature = "dev")]
    impl HeldIssuer {
        async fn start(jwks: String) -> HeldIssuer {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}/jwks", listener.local_addr().unwrap());
            let requests = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let (answer, mut told) = tokio::sync::mpsc::unbounded_channel::<()>();
            let counted = Arc::clone(&requests);
            tokio::spawn(async move {
                while let Ok((mut socket, _)) = listener.accept().await {
                    let mut request = vec![0; 4096];
                    let _ = socket.read(&mut request).await;
                    counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if told.recv().await.is_none() {
                        return;
                    }
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{jwks}",
                        jwks.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                }
            });
            HeldIssuer {
                url,
                requests,
                answer,
            }
        }

        fn requests(&self) -> usize {
            self.requests.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    /// Starts `cache`'s prefetch and returns once `issuer` holds its request (and the prefetch
    /// the fetch lock).
    #[cfg(feature = "dev")]
    async fn prefetch_under_way(
        cache: &Arc<JwksCache>,
        issuer: &HeldIssuer,
    ) -> tokio::task::JoinHandle<()> {
        let prefetch = tokio::spawn({
            let cache = Arc::clone(cache);
            async move { cache.prefetch().await }
        });
        while issuer.requests() == 0 {
            tokio::task::yield_now().await;
        }
        prefetch
    }

    /// `lookup` failed because the rate limit kept it from asking the issuer.
    #[cfg(feature = "dev")]
    fn assert_rate_limited(lookup: &Result<Arc<RsaPublicKey>, KeyError>) {
        assert!(
            matches!(
                lookup,
                Err(KeyError::UnknownKid {
                    refetch: RefetchOutcome::Suppressed { .. },
                    ..
                })
            ),
            "{lookup:?}"
        );
    }

    /// A lookup of `kid`, polled once and still pending: it has recorded its arrival and waits
    /// for the lock the prefetch holds.
    #[cfg(feature = "dev")]
    async fn waiting_lookup<'a>(
        cache: &'a JwksCache,
        kid: &'a str,
    ) -> std::pin::Pin<
        Box<impl std::future::Future<Output = Result<Arc<RsaPublicKey>, KeyError>> + 'a>,
    > {
        let mut lookup = Box::pin(cache.key(kid));
        let first = std::future::poll_fn(|cx| {
            std::task::Poll::Ready(std::future::Future::poll(lookup.as_mut(), cx))
        });
        assert!(first.await.is_pending(), "it waits");
        lookup
    }

    #[cfg(feature = "dev")]
    fn cache_of(url: &str, http_timeout: Duration) -> JwksCache {
        let options = KeyCacheOptions {
            http_timeout,
            ..KeyCacheOptions::default()
        };
        JwksCache::new(KeySource::JwksUrl(url.to_owned()), options).unwrap()
    }

    /// A lookup that waits for a prefetch under way takes the prefetch's outcome as its own
    /// fetch's: "refetched, and the kid is not there" (not a rate-limited refusal, which would
    /// say the keys were never asked for this kid), without asking the issuer a second time.
    #[cfg(feature = "dev")]
    #[tokio::test]
    async fn a_lookup_waiting_for_the_prefetch_takes_its_outcome_without_asking_again() {
        let published = crate::dev::SigningKey::generate().unwrap();
        let issuer = HeldIssuer::start(crate::dev::jwks([&published]).to_string()).await;
        let cache = Arc::new(cache_of(&issuer.url, Duration::from_secs(10)));
        let prefetch = prefetch_under_way(&cache, &issuer).await;
        let lookup = waiting_lookup(&cache, "a-kid-nobody-published").await;
        issuer.answer.send(()).unwrap();
        let missing = lookup.await;
        assert!(
            matches!(
                missing,
                Err(KeyError::UnknownKid {
                    refetch: RefetchOutcome::Refetched,
                    ..
                })
            ),
            "{missing:?}"
        );
        prefetch.await.unwrap();
        assert!(cache.key(published.kid()).await.is_ok());
        assert_eq!(
            issuer.requests(),
            1,
            "one fetch for the prefetch and both lookups"
        );
    }

    /// A prefetch's failure is the failure of the lookup that waited for it (the operator sees
    /// why the keys are missing, not a rate limit), and it opens no way round the rate limit.
    #[cfg(feature = "dev")]
    #[tokio::test]
    async fn a_failed_prefetch_is_the_waiting_lookups_failure_and_no_way_round_the_rate_limit() {
        let published = crate::dev::SigningKey::generate().unwrap();
        let issuer = HeldIssuer::start(crate::dev::jwks([&published]).to_string()).await;
        // The issuer never answers in time: the prefetch times out.
        let cache = Arc::new(cache_of(&issuer.url, Duration::from_millis(300)));
        let prefetch = prefetch_under_way(&cache, &issuer).await;
        let lookup = waiting_lookup(&cache, published.kid()).await;
        let failed = lookup.await;
        assert!(
            matches!(
                failed,
                Err(KeyError::Fetch {
                    source: KeyFetchError::Request(_),
                    ..
                })
            ),
            "{failed:?}"
        );
        prefetch.await.unwrap();
        // The prefetch was the attempt: the next lookup is rate limited, not a second fetch.
        let next = cache.key(published.kid()).await;
        assert_rate_limited(&next);
        assert_eq!(issuer.requests(), 1);
    }

    /// A prefetch that failed before any lookup came was nobody's fetch: the first lookup fetches
    /// afresh, once (a failure at boot does not fail the first exchange for 30 s).
    #[cfg(feature = "dev")]
    #[tokio::test]
    async fn a_prefetch_that_failed_before_any_lookup_leaves_the_first_lookup_its_own_fetch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        let key = crate::dev::SigningKey::generate().unwrap();
        let cache = JwksCache::new(
            KeySource::JwksFile(path.clone()),
            KeyCacheOptions::default(),
        )
        .unwrap();
        // The key file is not there yet: the prefetch fails, and no lookup is waiting.
        cache.prefetch().await;
        std::fs::write(&path, crate::dev::jwks([&key]).to_string()).unwrap();
        assert!(cache.key(key.kid()).await.is_ok());
        // Only once: an unknown kid now meets the rate limit.
        let unknown = cache.key("another-kid").await;
        assert_rate_limited(&unknown);
    }

    const GOOGLE_DISCOVERY: &str =
        "https://confidentialcomputing.googleapis.com/.well-known/openid-configuration";

    #[test]
    fn googles_discovery_may_name_keys_on_its_own_domain_only() {
        let google_keys = "https://www.googleapis.com/service_accounts/v1/metadata/jwk/signer@confidentialspace-sign.iam.gserviceaccount.com";
        assert!(check_jwks_uri(GOOGLE_DISCOVERY, google_keys).is_ok());
        assert!(check_jwks_uri(
            "http://127.0.0.1:8080/.well-known/openid-configuration",
            "http://127.0.0.1:8080/jwks"
        )
        .is_ok());
        assert!(matches!(
            check_jwks_uri(GOOGLE_DISCOVERY, "https://keys.attacker.example/jwks"),
            Err(InvalidKeySet::JwksUriElsewhere { .. })
        ));
        assert!(matches!(
            check_jwks_uri(
                GOOGLE_DISCOVERY,
                "https://googleapis.com.attacker.example/jwks"
            ),
            Err(InvalidKeySet::JwksUriElsewhere { .. })
        ));
        assert!(matches!(
            check_jwks_uri(
                "http://127.0.0.1:8080/.well-known/openid-configuration",
                "http://127.0.0.2:8080/jwks"
            ),
            Err(InvalidKeySet::JwksUriElsewhere { .. })
        ));
        // A document on a two-label host has no parent domain to share.
        assert!(matches!(
            check_jwks_uri(
                "https://example.com/.well-known/openid-configuration",
                "https://other.com/jwks"
            ),
            Err(InvalidKeySet::JwksUriElsewhere { .. })
        ));
    }

    #[test]
    fn https_discovery_may_not_send_the_key_fetch_over_plain_http() {
        let err = check_jwks_uri(
            GOOGLE_DISCOVERY,
            "http://www.googleapis.com/service_accounts/v1/metadata/jwk/x",
        )
        .unwrap_err();
        assert!(matches!(err, InvalidKeySet::JwksUriInsecure { .. }));
        assert!(err.to_string().contains("plain HTTP"));
    }
}
