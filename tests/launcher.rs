//! The dev launcher speaks the real launcher's API: the same routes, validation, error texts and
//! status codes, the token file, and an issuer that OIDC clients can use.

use crate::harness::launcher::TestLauncher;
use crate::harness::{attestgate_bin, closed_by_now, payload, wait_for, AUDIENCE};
use attestgate::attestation::{parse_unverified, LauncherClient, TokenRequest, TokenType};
use attestgate::attestation::{read_token_file, SourceError, DEFAULT_TOKEN_AUDIENCE};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::time::Duration;

/// A raw HTTP/1.1 call on the launcher socket: (status, content type, body).
async fn raw_call(launcher: &TestLauncher, method: &str, body: &str) -> (u16, String, String) {
    let stream = tokio::net::UnixStream::connect(&launcher.info().socket)
        .await
        .unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = hyper::Request::builder()
        .method(method)
        .uri("/v1/token")
        .header("host", "localhost")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        content_type,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

#[tokio::test]
async fn custom_audience_and_nonces_come_back_in_the_token() {
    let launcher = TestLauncher::start().await;
    let client = LauncherClient::new(&launcher.info().socket);
    let one = TokenRequest {
        nonces: vec!["0123456789abcdef".into()],
        ..TokenRequest::new(AUDIENCE)
    };
    let claims = payload(client.custom_token(&one).await.unwrap().expose());
    assert_eq!(claims["aud"], AUDIENCE);
    assert_eq!(
        claims["eat_nonce"], "0123456789abcdef",
        "one nonce is a string"
    );
    assert_eq!(
        claims["iss"],
        "https://confidentialcomputing.googleapis.com"
    );

    let two = TokenRequest {
        nonces: vec!["aaaaaaaaaa".into(), "bbbbbbbbbbbb".into()],
        ..TokenRequest::new(AUDIENCE)
    };
    let claims = payload(client.custom_token(&two).await.unwrap().expose());
    assert_eq!(
        claims["eat_nonce"],
        json!(["aaaaaaaaaa", "bbbbbbbbbbbb"]),
        "several nonces are an array"
    );
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3600
    );
}

#[tokio::test]
async fn the_response_is_the_raw_jwt_as_text_html() {
    let launcher = TestLauncher::start().await;
    let (status, content_type, body) = raw_call(
        &launcher,
        "POST",
        r#"{"audience":"https://x.example","token_type":"OIDC"}"#,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "text/html");
    assert_eq!(
        body.matches('.').count(),
        2,
        "a compact JWS, no JSON wrapper"
    );
    assert!(!body.ends_with('\n'));
}

#[tokio::test]
async fn get_returns_a_default_audience_token() {
    let launcher = TestLauncher::start().await;
    let token = LauncherClient::new(&launcher.info().socket)
        .default_token()
        .await
        .unwrap();
    assert_eq!(payload(token.expose())["aud"], DEFAULT_TOKEN_AUDIENCE);
}

#[tokio::test]
async fn invalid_requests_get_the_real_launchers_errors() {
    let launcher = TestLauncher::start().await;
    let cases: &[(&str, &str, u16, &str)] = &[
        ("POST", r#"{"audience":"a","token_type":"OIDC","bogus":1}"#, 400,
         r#"failed to parse POST body as TokenOptions: json: unknown field "bogus""#),
        ("POST", r#"{"audience":"","token_type":"OIDC"}"#, 400, "use GET request for the default identity token"),
        ("POST", r#"{"token_type":"OIDC"}"#, 400, "use GET request for the default identity token"),
        ("POST", r#"{"audience":"https://a.example"}"#, 400, "token_type is a required parameter"),
        ("POST", "", 400, "failed to parse POST body as TokenOptions: EOF"),
        ("POST", r#"{"audience":42}"#, 400,
         "failed to parse POST body as TokenOptions: json: cannot unmarshal number into Go struct field TokenOptions.audience of type string"),
        ("PUT", "", 405, "TEE server received an invalid HTTP method: PUT"),
        ("DELETE", "", 405, "TEE server received an invalid HTTP method: DELETE"),
    ];
    for (method, body, status, message) in cases {
        let (got_status, content_type, got_body) = raw_call(&launcher, method, body).await;
        assert_eq!(
            (got_status, got_body.as_str()),
            (*status, *message),
            "{method} {body}"
        );
        assert_eq!(content_type, "text/html");
    }
}

#[tokio::test]
async fn nonce_and_audience_limits_are_enforced_and_reported_verbatim() {
    let launcher = TestLauncher::start().await;
    let client = LauncherClient::new(&launcher.info().socket);
    let nonce = "n".repeat(16);
    let cases = [
        (
            TokenRequest {
                nonces: vec![nonce.clone(); 7],
                ..TokenRequest::new(AUDIENCE)
            },
            "got 7 nonces, but at most 6",
        ),
        (
            TokenRequest {
                nonces: vec!["short".into()],
                ..TokenRequest::new(AUDIENCE)
            },
            "nonce 0 is 5 bytes",
        ),
        (
            TokenRequest {
                nonces: vec!["x".repeat(75)],
                ..TokenRequest::new(AUDIENCE)
            },
            "nonce 0 is 75 bytes",
        ),
        (TokenRequest::new("a".repeat(513)), "audience is 513 bytes"),
    ];
    for (request, expected) in cases {
        match client.custom_token(&request).await {
            Err(SourceError::Launcher {
                status: 400,
                message,
            }) => assert!(message.contains(expected), "{message}"),
            other => panic!("expected a 400 containing {expected:?}, got {other:?}"),
        }
    }
    let six = TokenRequest {
        nonces: vec![nonce; 6],
        ..TokenRequest::new(AUDIENCE)
    };
    client
        .custom_token(&six)
        .await
        .expect("six nonces are allowed");
}

#[tokio::test]
async fn pki_tokens_carry_a_chain_to_the_published_root() {
    let launcher = TestLauncher::start().await;
    let client = LauncherClient::new(&launcher.info().socket);
    let request = TokenRequest {
        token_type: TokenType::Pki,
        ..TokenRequest::new(AUDIENCE)
    };
    let token = client.custom_token(&request).await.unwrap();
    let parsed = parse_unverified(token.expose()).unwrap();
    assert_eq!(parsed.header.x5c.len(), 3);
    let root_pem = std::fs::read_to_string(&launcher.info().pki_root).unwrap();
    let root = attestgate::attestation::PkiRoot::from_pem_or_der(root_pem.as_bytes()).unwrap();
    assert_eq!(parsed.header.x5c[2], root.der());
}

#[tokio::test]
async fn the_token_file_is_replaced_atomically_before_expiry() {
    let launcher = TestLauncher::start_with(|c| c.token_lifetime = Duration::from_secs(2)).await;
    let path = launcher.info().token_file.clone();
    let first = read_token_file(&path).await.unwrap();
    assert_eq!(payload(first.expose())["aud"], DEFAULT_TOKEN_AUDIENCE);
    let first_text = first.expose().to_owned();
    // Each read must see a whole token, old or new, never a partial write.
    let second = wait_for(
        "the token file to be refreshed",
        Duration::from_secs(20),
        || {
            let (path, first_text) = (path.clone(), first_text.clone());
            async move {
                let token = read_token_file(&path).await.ok()?;
                parse_unverified(token.expose())
                    .expect("the token file always holds a whole token");
                (token.expose() != first_text).then_some(token)
            }
        },
    )
    .await;
    assert!(payload(second.expose())["iat"].as_i64() >= payload(&first_text)["iat"].as_i64());
}

#[tokio::test]
async fn discovery_and_jwks_are_served_over_http() {
    let launcher = TestLauncher::start().await;
    let http = reqwest::Client::new();
    let discovery: Value = http
        .get(&launcher.info().discovery_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        discovery["issuer"],
        "https://confidentialcomputing.googleapis.com"
    );
    assert_eq!(discovery["jwks_uri"], launcher.info().jwks_url);
    let jwks: Value = http
        .get(&launcher.info().jwks_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["kid"], launcher.launcher.current_kid());
    assert_eq!(jwks["keys"][0]["alg"], "RS256");
    let written = attestgate::dev::LauncherInfo::read(launcher.dir.path()).unwrap();
    assert_eq!(&written, launcher.info());
}

#[tokio::test]
async fn a_restart_keeps_the_key_and_the_private_key_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let first = attestgate::dev::Launcher::start(attestgate::dev::LauncherConfig::new(dir.path()))
        .await
        .unwrap();
    let kid = first.current_kid();
    first.shutdown().await;
    assert!(
        !dir.path().join("teeserver.sock").exists(),
        "shutdown removes the socket"
    );
    let mode = std::fs::metadata(dir.path().join("signing-key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let second = attestgate::dev::Launcher::start(attestgate::dev::LauncherConfig::new(dir.path()))
        .await
        .unwrap();
    assert_eq!(second.current_kid(), kid);
    second.shutdown().await;
}

#[tokio::test]
async fn a_missing_socket_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let client = LauncherClient::new(dir.path().join("teeserver.sock"));
    let err = client.default_token().await.unwrap_err();
    assert!(matches!(err, SourceError::Connect { .. }));
    assert!(err.to_string().contains("attestgate dev launcher"), "{err}");
}

#[tokio::test]
async fn rotate_every_rotates_and_keeps_the_previous_key_published() {
    let launcher =
        TestLauncher::start_with(|c| c.rotate_every = Some(Duration::from_millis(200))).await;
    let first = launcher.launcher.current_kid();
    let http = reqwest::Client::new();
    let url = launcher.info().jwks_url.clone();
    let kids = wait_for(
        "a rotation to show in the JWKS",
        Duration::from_secs(20),
        || {
            let (http, url, first) = (http.clone(), url.clone(), first.clone());
            async move {
                let jwks: Value = http.get(&url).send().await.ok()?.json().await.ok()?;
                let kids: Vec<String> = jwks["keys"]
                    .as_array()?
                    .iter()
                    .filter_map(|k| k["kid"].as_str().map(str::to_owned))
                    .collect();
                (kids[0] != first).then_some(kids)
            }
        },
    )
    .await;
    assert!(
        kids.contains(&first),
        "the previous key stays published: {kids:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Hardening. Each test below plays a local attacker. CI runs as root, which passes every
// permission check, so they assert owners and modes rather than relying on EACCES.

use attestgate::dev::{Launcher, LauncherConfig};
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::Path;

fn mode_of(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .mode()
        & 0o7777
}

fn my_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Starts a launcher in `dir` expecting it to refuse; returns the error.
async fn refused_start(dir: &Path) -> String {
    match Launcher::start(LauncherConfig::new(dir)).await {
        Ok(launcher) => {
            launcher.shutdown().await;
            panic!("the launcher started in {}", dir.display())
        }
        Err(e) => e.to_string(),
    }
}

/// A directory holding the keys a launcher created there; returns the signing key's kid.
async fn directory_with_keys(dir: &Path) -> String {
    let launcher = Launcher::start(LauncherConfig::new(dir)).await.unwrap();
    let kid = launcher.current_kid();
    launcher.shutdown().await;
    kid
}

#[tokio::test]
async fn a_key_file_that_group_or_others_can_read_or_write_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let kid = directory_with_keys(dir.path()).await;
    for name in [
        "signing-key.pem",
        "pki-root-key.pem",
        "pki-intermediate-key.pem",
    ] {
        let key = dir.path().join(name);
        for mode in [0o644, 0o640, 0o604, 0o620, 0o602] {
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
            let error = refused_start(dir.path()).await;
            assert!(
                error.contains(&key.display().to_string())
                    && error.contains(&format!("mode is {mode:04o}"))
                    && error.contains("chmod 600"),
                "{name} with mode {mode:o}: {error}"
            );
        }
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    // Once private again, the same key is used.
    let launcher = Launcher::start(LauncherConfig::new(dir.path()))
        .await
        .unwrap();
    assert_eq!(launcher.current_kid(), kid);
    launcher.shutdown().await;
}

#[tokio::test]
async fn a_signing_key_that_is_a_symlink_is_refused() {
    let elsewhere = tempfile::tempdir().unwrap();
    directory_with_keys(elsewhere.path()).await;
    let target = elsewhere.path().join("signing-key.pem");
    let before = std::fs::read(&target).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("signing-key.pem");
    // The target is a private key owned by this user: only the link itself is wrong.
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let error = refused_start(dir.path()).await;
    assert!(
        error.contains(&link.display().to_string()) && error.contains("symbolic link"),
        "{error}"
    );
    assert_eq!(
        std::fs::read(&target).unwrap(),
        before,
        "the target is untouched"
    );
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
}

#[tokio::test]
async fn a_signing_key_owned_by_another_user_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    directory_with_keys(dir.path()).await;
    let key = dir.path().join("signing-key.pem");
    // Mode 0600 and a regular file: only the owner is wrong.
    let nobody = rustix::fs::Uid::from_raw(65534);
    if let Err(e) = rustix::fs::chown(&key, Some(nobody), None) {
        assert_ne!(my_uid(), 0, "root can chown: {e}");
        eprintln!("SKIPPED: only root can give a file to another user ({e})");
        return;
    }
    assert_eq!(mode_of(&key), 0o600);
    let error = refused_start(dir.path()).await;
    assert!(
        error.contains(&key.display().to_string())
            && error.contains("owned by uid 65534")
            && error.contains(&format!("uid {}", my_uid())),
        "{error}"
    );
}

#[test]
fn a_fifo_in_place_of_the_signing_key_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("signing-key.pem");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    // Opening a FIFO for reading blocks until a writer comes: run the start on its own thread
    // so that a launcher that blocks fails this test instead of hanging it.
    let (done, result) = std::sync::mpsc::channel();
    let path = dir.path().to_owned();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _ = done.send(runtime.block_on(refused_start(&path)));
    });
    let error = result
        .recv_timeout(Duration::from_secs(60))
        .expect("the launcher refuses the FIFO rather than blocking on it");
    assert!(
        error.contains(&fifo.display().to_string()) && error.contains("not a regular file"),
        "{error}"
    );
}

#[tokio::test]
async fn the_token_file_is_readable_by_its_owner_only_and_stays_so_when_refreshed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("attestation_verifier_claims_token");
    // A token file left world-readable by an earlier version is replaced, not reused.
    std::fs::write(&path, "old").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut config = LauncherConfig::new(dir.path());
    config.token_lifetime = Duration::from_secs(2);
    let launcher = Launcher::start(config).await.unwrap();
    assert_eq!(mode_of(&path), 0o600);
    assert_eq!(std::fs::metadata(&path).unwrap().uid(), my_uid());
    let first = std::fs::read_to_string(&path).unwrap();
    wait_for(
        "the token file to be refreshed",
        Duration::from_secs(20),
        || {
            let changed = std::fs::read_to_string(&path).is_ok_and(|now| now != first);
            async move { changed.then_some(()) }
        },
    )
    .await;
    assert_eq!(
        mode_of(&path),
        0o600,
        "a refreshed token file is private too"
    );
    launcher.shutdown().await;
}

/// A child that is killed when the test ends, however it ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn under_umask_000_the_socket_token_file_and_directory_are_owner_only() {
    // The umask is process-wide and tests run in parallel threads, so the launcher runs as the
    // built binary in a shell that set umask 000. The probe file shows that umask took effect.
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("launcher");
    let probe = parent.path().join("umask-probe");
    let log_path = parent.path().join("launcher.log");
    let child = std::process::Command::new("sh")
        .arg("-c")
        .arg(r#"umask 000 && : > "$2" && exec "$0" dev launcher --dir "$1""#)
        .arg(attestgate_bin())
        .arg(&dir)
        .arg(&probe)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let ready = dir.join("launcher.json");
    wait_for(
        "the launcher to write launcher.json",
        Duration::from_secs(60),
        || {
            if let Some(status) = child.0.try_wait().unwrap() {
                panic!(
                    "the launcher exited with {status}: {}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
            let ready = ready.exists();
            async move { ready.then_some(()) }
        },
    )
    .await;
    assert_eq!(mode_of(&probe), 0o666, "the shell's umask was 000");

    let socket = dir.join("teeserver.sock");
    let metadata = std::fs::symlink_metadata(&socket).unwrap();
    assert!(metadata.file_type().is_socket());
    assert_eq!(metadata.uid(), my_uid());
    assert_eq!(
        metadata.mode() & 0o077,
        0,
        "group and others must not be able to connect: mode {:o}",
        metadata.mode() & 0o7777
    );
    assert_eq!(
        mode_of(&dir.join("attestation_verifier_claims_token")),
        0o600
    );
    assert_eq!(mode_of(&dir.join("signing-key.pem")), 0o600);
    assert_eq!(
        mode_of(&dir),
        0o700,
        "a directory the launcher creates is private"
    );
    // The owner still gets a token through the socket.
    let token = LauncherClient::new(&socket).default_token().await.unwrap();
    assert_eq!(payload(token.expose())["aud"], DEFAULT_TOKEN_AUDIENCE);
}

fn connect(launcher: &TestLauncher) -> UnixStream {
    UnixStream::connect(&launcher.info().socket).unwrap()
}

/// Reads `stream` until the server closes it and returns what it sent. Panics if it is still
/// open after `bound`, which is far above any timeout under test.
async fn read_until_closed(mut stream: UnixStream, bound: Duration) -> String {
    tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + bound;
        let mut received = Vec::new();
        let mut buffer = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            assert!(
                !left.is_zero(),
                "the server kept the connection open for {bound:?}"
            );
            stream.set_read_timeout(Some(left)).unwrap();
            match stream.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("reading: {e}"),
            }
        }
        String::from_utf8_lossy(&received).into_owned()
    })
    .await
    .unwrap()
}

const GENEROUS: Duration = Duration::from_secs(60);

#[tokio::test]
async fn idle_trickling_and_kept_alive_connections_are_closed_after_the_header_timeout() {
    let launcher =
        TestLauncher::start_with(|c| c.header_read_timeout = Duration::from_secs(1)).await;
    let idle: Vec<UnixStream> = (0..8).map(|_| connect(&launcher)).collect();
    // Sends part of the headers and then nothing more.
    let mut trickling = connect(&launcher);
    trickling
        .write_all(b"GET /v1/token HTTP/1.1\r\nHost: localhost\r\n")
        .unwrap();
    // A whole request, then the connection is kept alive and left idle.
    let mut kept_alive = connect(&launcher);
    kept_alive
        .write_all(b"GET /v1/token HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();

    for stream in idle {
        read_until_closed(stream, GENEROUS).await;
    }
    read_until_closed(trickling, GENEROUS).await;
    let answered = read_until_closed(kept_alive, GENEROUS).await;
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
}

#[tokio::test]
async fn a_client_still_gets_a_token_while_idle_connections_hold_every_slot() {
    let launcher = TestLauncher::start_with(|c| {
        c.header_read_timeout = Duration::from_secs(1);
        c.max_connections = 4;
    })
    .await;
    // Connections are accepted in the order they were made: these four take every slot.
    let idle: Vec<UnixStream> = (0..4).map(|_| connect(&launcher)).collect();
    let token = LauncherClient::new(&launcher.info().socket)
        .with_timeout(GENEROUS)
        .default_token()
        .await
        .expect("served once the header timeout frees a slot");
    assert_eq!(payload(token.expose())["aud"], DEFAULT_TOKEN_AUDIENCE);
    // The cap held: the client was served only after the server had closed an idle connection.
    assert!(
        idle.iter().any(closed_by_now),
        "the client was served while all four idle connections were still open"
    );
}

#[tokio::test]
async fn idle_connections_below_the_cap_do_not_delay_other_clients() {
    let launcher =
        TestLauncher::start_with(|c| c.header_read_timeout = Duration::from_secs(600)).await;
    let idle: Vec<UnixStream> = (0..16).map(|_| connect(&launcher)).collect();
    let token = LauncherClient::new(&launcher.info().socket)
        .with_timeout(GENEROUS)
        .default_token()
        .await
        .unwrap();
    assert_eq!(payload(token.expose())["aud"], DEFAULT_TOKEN_AUDIENCE);
    assert!(
        !idle.iter().any(closed_by_now),
        "idle connections under the cap are kept"
    );
}

#[tokio::test]
async fn a_post_whose_body_never_arrives_gets_408_and_is_closed() {
    let launcher = TestLauncher::start_with(|c| {
        c.header_read_timeout = Duration::from_secs(600);
        c.body_read_timeout = Duration::from_secs(1);
    })
    .await;
    let mut stream = connect(&launcher);
    stream
        .write_all(b"POST /v1/token HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n{")
        .unwrap();
    let answered = read_until_closed(stream, GENEROUS).await;
    assert!(answered.starts_with("HTTP/1.1 408"), "{answered}");
    assert!(
        answered.ends_with("timed out reading the request body"),
        "{answered}"
    );
}

#[tokio::test]
async fn a_token_request_body_over_64_kib_is_refused_with_413() {
    let launcher = TestLauncher::start().await;
    let big = format!(
        r#"{{"audience":"{}","token_type":"OIDC"}}"#,
        "a".repeat(64 * 1024)
    );
    let (status, content_type, body) = raw_call(&launcher, "POST", &big).await;
    assert_eq!(
        (status, body.as_str()),
        (413, "request body is larger than 65536 bytes")
    );
    assert_eq!(content_type, "text/html");
}

#[tokio::test]
async fn exact_claims_are_minted_as_given_and_a_patch_keeps_production_defaults() {
    use attestgate::dev::DevClaims;
    // A debug token's claims, as a user would copy them from a real token.
    let debug = serde_json::json!({"dbgstat": "enabled", "swname": "CONFIDENTIAL_SPACE", "hwmodel": "GCP_AMD_SEV"});
    let exact = TestLauncher::start_with(|c| c.claims = DevClaims::Exactly(debug.clone())).await;
    let token = exact.token(AUDIENCE).await;
    let claims = parse_unverified(&token).unwrap().payload().unwrap();
    assert_eq!(claims["dbgstat"], "enabled");
    assert_eq!(claims["aud"], AUDIENCE);
    assert!(claims.contains_key("exp") && claims.contains_key("iss"));
    assert!(
        !claims.contains_key("submods"),
        "no production support_attributes crept into a debug token: {claims:?}"
    );
    let patched = TestLauncher::start_with(|c| {
        c.claims = DevClaims::Patch(serde_json::json!({"dbgstat": "enabled"}))
    })
    .await;
    let token = patched.token(AUDIENCE).await;
    let claims = parse_unverified(&token).unwrap().payload().unwrap();
    assert_eq!(claims["dbgstat"], "enabled");
    assert!(claims["submods"]["confidential_space"]["support_attributes"].is_array());
}
