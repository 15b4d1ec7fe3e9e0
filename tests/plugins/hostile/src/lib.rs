//! Misbehaves in the way its configuration's `attack` names, when asked to evaluate. Every attack
//! must end in a deny (or a refusal) with the right kind of error, and leave the host healthy.

use attestgate_plugin_sdk::{
    export_policy, log, AudienceRequest, Claims, Context, LogLevel, Login, Policy, Reason, Report,
    Verdict,
};
use serde::Deserialize;
use std::sync::atomic::{AtomicU32, Ordering};

#[derive(Debug, Deserialize)]
struct Config {
    attack: String,
    /// The audience `select-audience` asks for: another collaborator's, to try to steal it.
    #[serde(default)]
    audience: Option<String>,
    /// Where `open-socket` connects.
    #[serde(default)]
    target: Option<String>,
}

struct Hostile;

static CALLS: AtomicU32 = AtomicU32::new(0);

impl Policy for Hostile {
    type Config = Config;

    fn validate(config: &Config) -> Result<(), String> {
        if config.attack == "sleep-in-validate" {
            std::thread::sleep(std::time::Duration::from_secs(30));
        }
        Ok(())
    }

    fn audience(ctx: &Context<Config>) -> Result<AudienceRequest, String> {
        if ctx.config.attack == "sleep-in-audience" {
            std::thread::sleep(std::time::Duration::from_secs(30));
        }
        Ok(AudienceRequest::oidc(
            ctx.config
                .audience
                .as_deref()
                .unwrap_or("https://hostile.example"),
        ))
    }

    fn evaluate(ctx: &Context<Config>, _claims: &Claims<'_>) -> Verdict {
        let mut report = Report::new();
        match ctx.config.attack.as_str() {
            "infinite-loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "memory-bomb" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            // Every way a plugin could reach the host's files: an absolute path, its working
            // directory, the root. Any that works is a preopened directory it should not have.
            "read-file" => {
                let attempts = [
                    (
                        "read /etc/passwd",
                        std::fs::read("/etc/passwd").map(|b| b.len()),
                    ),
                    ("list .", std::fs::read_dir(".").map(|d| d.count())),
                    ("list /", std::fs::read_dir("/").map(|d| d.count())),
                    (
                        "read ./Cargo.toml",
                        std::fs::read("Cargo.toml").map(|b| b.len()),
                    ),
                ];
                let leaks: Vec<String> = attempts
                    .iter()
                    .filter_map(|(what, result)| {
                        result.as_ref().ok().map(|n| format!("{what}: {n}"))
                    })
                    .collect();
                if leaks.is_empty() {
                    let errors: Vec<String> = attempts
                        .iter()
                        .filter_map(|(what, result)| {
                            result.as_ref().err().map(|e| format!("{what}: {e}"))
                        })
                        .collect();
                    report.pass(None, format!("file read failed: {}", errors.join("; ")))
                } else {
                    report.fail(
                        None,
                        format!("the filesystem answered: {}", leaks.join("; ")),
                    )
                }
            }
            // Connects to `target` (a listener the test holds open), so that a refused connection
            // cannot pass for a sandbox without a network.
            "open-socket" => {
                let target = ctx.config.target.as_deref().unwrap_or("127.0.0.1:22");
                match std::net::TcpStream::connect(target) {
                    Ok(_) => report.fail(None, format!("connected to {target}")),
                    Err(e) => report.pass(None, format!("socket failed: {e}")),
                }
            }
            "read-env" => {
                let vars: Vec<(String, String)> = std::env::vars().collect();
                let args: Vec<String> = std::env::args().collect();
                if vars.is_empty() && args.is_empty() {
                    report.pass(None, "environment and arguments are empty")
                } else {
                    report.fail(
                        None,
                        format!("saw {} env vars and {} args", vars.len(), args.len()),
                    )
                }
            }
            "flood-log" => {
                for i in 0..1_000_000 {
                    log(
                        LogLevel::Info,
                        &format!("flood line {i} {}", "x".repeat(100)),
                    );
                }
                report.pass(None, "flooded")
            }
            "stdout-flood" => {
                for i in 0..1_000_000 {
                    println!("stdout flood line {i} {}", "y".repeat(100));
                }
                report.pass(None, "flooded stdout")
            }
            "panic" => panic!("hostile plugin panicked on purpose"),
            "malformed-verdict" => {
                return Verdict {
                    allow: true,
                    reasons: Vec::new(),
                    login: Login { role: None },
                };
            }
            "allow-with-failed-reason" => {
                report.fail(Some("/hwmodel"), "this failed");
                let mut verdict = report.verdict();
                verdict.allow = true;
                return verdict;
            }
            "allow" => report.pass(None, "allowing everything"),
            // A reason claim that is not a JSON pointer, built by hand since the SDK's `Report`
            // would turn the name into one: the host prints claims as pointers, so this one
            // could pass for a claim of any shape.
            "claim-not-a-pointer" => report.add(Reason {
                claim: Some("hwmodel".into()),
                passed: true,
                message: "claim without a leading slash".into(),
            }),
            // An allow whose login role smuggles a second line into the exchange's log and its
            // request to Vault.
            "login-role-with-newline" => report
                .pass(None, "allowing with a forged role")
                .role("bank-b\nrole: root"),
            // Asks the host for 256 MiB of random bytes, outside the plugin's memory cap.
            "random-flood" => {
                let bytes = wasip2::random::random::get_random_bytes(256 << 20);
                report.pass(None, format!("got {} random bytes", bytes.len()))
            }
            // Keeps host resources (pollables) alive until the host runs out.
            "resource-flood" => {
                let mut held = Vec::new();
                for _ in 0..1_000_000 {
                    held.push(wasip2::clocks::monotonic_clock::subscribe_duration(0));
                }
                report.pass(None, format!("held {} pollables", held.len()))
            }
            // A reason that would forge another collaborator's success line on the terminal.
            "forge-output" => report.fail(
                None,
                "no\n\u{1b}[32mbank-b           released 1 secret(s) via role \"bank-b\"\u{1b}[0m",
            ),
            // Blocks in a WASI clock wait, where epoch interruption cannot reach.
            "sleep" => {
                std::thread::sleep(std::time::Duration::from_secs(30));
                report.pass(None, "slept 30 s")
            }
            // Many short waits, each within the deadline, that add up past it.
            "sleep-loop" => loop {
                std::thread::sleep(std::time::Duration::from_millis(5));
            },
            // A short wait within the deadline is granted, and the monotonic clock moves by it.
            "short-sleep" => {
                let before = std::time::Instant::now();
                std::thread::sleep(std::time::Duration::from_millis(10));
                let slept = before.elapsed();
                if slept >= std::time::Duration::from_millis(10) {
                    report.pass(None, format!("slept {slept:?}"))
                } else {
                    report.fail(None, format!("the clock moved only {slept:?}"))
                }
            }
            "count" => {
                let calls = CALLS.fetch_add(1, Ordering::SeqCst) + 1;
                report.pass(None, format!("call number {calls}"))
            }
            "clock" => {
                let wall = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                report.pass(None, format!("wall clock says {wall}"))
            }
            other => report.fail(None, format!("unknown attack {other}")),
        };
        report.verdict()
    }
}

export_policy!(Hostile);

// Only the attacks on the verdict run natively; the others need the sandbox they attack.
#[cfg(test)]
mod tests {
    use super::*;
    use attestgate_plugin_sdk::testing;
    use serde_json::json;

    fn host_refusal(attack: &str) -> String {
        let claims = testing::production_claims("https://hostile.example", 1_900_000_000);
        testing::evaluate::<Hostile>(&json!({ "attack": attack }), &claims, 1_900_000_000)
            .expect_err(attack)
    }

    #[test]
    fn each_verdict_attack_breaks_the_contract_the_host_checks() {
        for (attack, expected) in [
            ("malformed-verdict", "allowed without giving any reason"),
            ("allow-with-failed-reason", "allowed although a rule failed"),
            (
                "claim-not-a-pointer",
                "reason claim \"hwmodel\" is not a JSON pointer",
            ),
            (
                "login-role-with-newline",
                "login role \"bank-b\\nrole: root\" contains whitespace or control characters",
            ),
        ] {
            let refusal = host_refusal(attack);
            assert!(refusal.contains(expected), "{attack}: {refusal}");
        }
    }
}
