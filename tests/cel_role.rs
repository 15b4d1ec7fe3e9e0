//! The `cel-role` plugin against real OpenBao: the same CEL role JSON, written to OpenBao and
//! given to the plugin, must decide every login the same way, with the same message; a program
//! OpenBao refuses to store must be refused by the plugin's `validate-config`; and a collaborator
//! whose OpenBao uses a CEL role completes an exchange through `auth/<mount>/cel/login`.

use crate::harness::config::{Collaborator, ConfigBuilder, Secret, Vault};
use crate::harness::exchange::{assert_succeeded, run};
use crate::harness::launcher::TestLauncher;
use crate::harness::openbao::OpenBao;
use crate::harness::plugins::{engine, plugin_spec};
use crate::harness::{production_claims_at, target_dir};
use attestgate::config::RoleKind;
use attestgate::dev::{merge_patch, SigningKey};
use attestgate::exchange::Route;
use attestgate::plugin::{FailureKind, Limits, Verdict};
use serde_json::{json, Map, Value};

const AUDIENCE: &str = "https://vault.bank-a.example";

/// Boolean conditions over the claims: comparisons, `in`, `has()`, `size()`, macros, string
/// functions and the regex extension, arithmetic on JSON numbers (doubles), the variables `cs`
/// and `allowed`, and `now`.
const CONDITIONS: &[&str] = &[
    "claims.hwmodel == 'GCP_AMD_SEV'",
    "claims.swname != 'GCE'",
    "'STABLE' in cs.support_attributes",
    "has(claims.eat_nonce)",
    "has(claims.submods.gce.project_id)",
    "size(claims.google_service_accounts) > 0",
    "claims.google_service_accounts.exists(a, a.endsWith('.iam.gserviceaccount.com'))",
    "cs.support_attributes.all(a, a in ['LATEST', 'STABLE', 'USABLE'])",
    "claims.submods.gce.project_id.startsWith('operator-')",
    "claims.submods.gce.project_id.matches('^[a-z-]+$')",
    "int(claims.swversion[0]) >= 260000",
    "claims.oemid == 11129",
    "claims.oemid + 1.0 > 11129.5",
    "claims.exp - claims.iat > 600.0",
    "claims.secboot",
    "claims.dbgstat == 'disabled-since-boot'",
    "claims.submods.container.image_digest in allowed",
    "claims.hwmodel.lowerAscii() == 'gcp_amd_sev'",
    "size(claims.submods.container.image_digest) == 71",
    "now > timestamp('2020-01-01T00:00:00Z')",
    "claims.submods.gce.zone.contains('us-')",
    "claims.swversion.exists_one(v, v.startsWith('26'))",
    "claims.google_service_accounts.filter(a, a.contains('operator')).size() == 1",
    "claims.swname.split('_').size() == 2",
    "claims.hwmodel.replace('GCP_', '') == 'AMD_SEV'",
    "claims.submods.gce.project_id.substring(0, 8) == 'operator'",
    "claims.sub.indexOf('/projects/') > 0",
    "claims.swversion.map(v, int(v)).exists(v, v > 250000)",
    "math.greatest(size(claims.swversion), 1) == 1",
    "base64.encode(b'operator') == 'b3BlcmF0b3I='",
    "sets.contains(cs.support_attributes, ['STABLE'])",
    "sets.intersects(claims.swversion, ['260900', '250301'])",
    "claims.swversion.all(v, v.matches('^[0-9]+$'))",
    "has(claims.submods.container) && claims.submods.container.image_reference.endsWith(claims.submods.container.image_digest)",
    "type(claims.oemid) == double",
    "claims.oemid > 0u",
    "claims.oemid >= 11129 && claims.oemid <= 11129.0",
    "string(claims.oemid) == '11129'",
    "now - timestamp('2020-01-01T00:00:00Z') > duration('24h')",
    "claims.swname in ['CONFIDENTIAL_SPACE', 'GCE']",
    "'gce' in claims.submods",
    "claims.submods.confidential_space.monitoring_enabled.memory == false",
    "!claims.secboot || claims.dbgstat.startsWith('disabled')",
];

/// Conditions that fail to evaluate on some or all claim sets: a missing key, an operator no
/// overload takes, division by zero, an index out of range, a failed conversion.
const FAILING: &[&str] = &[
    "claims.nosuch == 'x'",
    "claims.oemid % 2.0 == 1.0",
    "1 / (size(claims.swversion) - 1) == 1",
    "claims.hwmodel + 1 == 'x'",
    "cs.support_attributes[10] == 'x'",
    "int(claims.hwmodel) > 0",
    "size(claims.oemid) > 0",
    "claims.eat_nonce.size() > 0",
    "claims.oemid + 1 > 0",
    "claims.submods.gce.project_id.nosuch == 'x'",
    "claims.swversion['0'] == 'x'",
    "uint(claims.oemid) > 0u && -claims.oemid < 0.0 && claims.hwmodel < 1",
];

/// Programs OpenBao refuses to store.
const REFUSED: &[&str] = &[
    "pb.Auth{ttl: 5}",
    "pb.Auth{policies: 'p'}",
    "pb.Auth{token_type: 1}",
    "1 + 'a' == 2 ? pb.Auth{} : 'x'",
    "undeclared == 1",
    "claims.hwmodel ==",
    "claims.sub.startsWith(1)",
];

/// Every program: each condition alone and in the shapes roles are written in.
fn programs() -> Vec<String> {
    let mut programs = Vec::new();
    let all: Vec<&str> = CONDITIONS.iter().chain(FAILING).copied().collect();
    for c in &all {
        programs.push(format!(
            "{c} ? pb.Auth{{policies: ['p']}} : 'the rule {} does not hold'",
            c.replace('\'', "")
        ));
        programs.push((*c).to_owned());
    }
    for pair in all.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        programs.push(format!("{a} && {b} ? pb.Auth{{}} : false"));
        programs.push(format!(
            "{a} || {b} ? pb.Auth{{metadata: {{'project': claims.submods.gce.project_id}}}} : 'neither'"
        ));
        programs.push(format!(
            "!({a}) ? 'inverted' : pb.Auth{{display_name: claims.swname}}"
        ));
    }
    programs.extend(
        [
            "pb.Auth{metadata: {'oemid': claims.oemid}}",
            "pb.Auth{policies: claims.swversion}",
            "pb.Auth{policies: [claims.oemid]}",
            "claims.oemid",
            "claims.submods",
            "claims.swversion",
            "1u",
            "null",
            "now",
            "operation == 'update' ? pb.Auth{} : operation",
            "claims.exp > 1.5 ? pb.Auth{} : 'x'",
            "9223372036854775807 + 1 > 0",
            "stable ? pb.Auth{} : 'not stable'",
            "nonce:size(nonce) == 16 ? pb.Auth{} : 'wrong nonce'",
            "nonce:stable",
            "cs.nosuch",
            "'custom denial'",
            "pb.Auth{token_type: 1u, period: 60, num_uses: 1, no_default_policy: true, bound_cidrs: ['127.0.0.1/32'], token_policies: ['t']}",
        ]
        .map(str::to_owned),
    );
    programs.extend(REFUSED.iter().map(|p| (*p).to_owned()));
    programs
}

/// The claim sets every program is tried on (the launcher adds `iss`, `aud` and the times).
fn claim_sets() -> Vec<Value> {
    let patches = [
        json!({}),
        json!({"dbgstat": "enabled", "submods": {"confidential_space": {"support_attributes": ["EXPERIMENTAL"]}}}),
        json!({"submods": {"gce": {"project_id": null}}, "hwmodel": "GCP_INTEL_TDX"}),
        json!({"eat_nonce": ["0123456789abcdef"], "swversion": ["250301", "260900"], "oemid": 11130}),
        json!({"google_service_accounts": [], "secboot": false, "swversion": ["x"]}),
    ];
    patches
        .iter()
        .map(|patch| {
            let mut claims = attestgate::dev::production_claims();
            merge_patch(&mut claims, patch);
            claims
        })
        .collect()
}

/// The role JSON for `expression`, as OpenBao stores it under `name`. An expression that starts
/// with `nonce:` also has a variable, after the others, that fails where `eat_nonce` is missing.
fn role(name: &str, expression: &str) -> Value {
    let mut variables = vec![
        json!({"name": "cs", "expression": "claims.submods.confidential_space"}),
        json!({"name": "allowed", "expression": "['sha256:1447781b9a6fd0a09a6352c10efaffaf6a67d2d12940b56d00cb38c5b56ad646']"}),
        json!({"name": "stable", "expression": "'STABLE' in cs.support_attributes"}),
    ];
    let expression = match expression.strip_prefix("nonce:") {
        Some(rest) => {
            variables.push(json!({"name": "nonce", "expression": "claims.eat_nonce[0]"}));
            rest
        }
        None => expression,
    };
    json!({
        "name": name,
        "cel_program": {"variables": variables, "expression": expression},
        "bound_audiences": [AUDIENCE],
    })
}

/// Signs `claims` (with `iss`, `aud` and a validity window from now) with the launcher's key.
fn token(key: &SigningKey, launcher: &TestLauncher, claims: &Value) -> (String, Value) {
    let now = attestgate::attestation::unix_now();
    let mut claims = claims.clone();
    merge_patch(
        &mut claims,
        &json!({"iss": launcher.info().issuer, "aud": AUDIENCE, "iat": now, "nbf": now, "exp": now + 3600}),
    );
    (key.sign(Map::new(), &claims).unwrap(), claims)
}

/// The first failed reason: for cel-role, OpenBao's login error.
fn denial(verdict: &Verdict) -> Option<String> {
    verdict
        .reasons
        .iter()
        .find(|r| !r.passed)
        .map(|r| r.message.clone())
}

#[tokio::test]
async fn the_plugin_decides_every_generated_program_as_openbao_does() {
    let launcher = TestLauncher::start().await;
    let key = SigningKey::load_or_create(&launcher.dir.path().join("signing-key.pem")).unwrap();
    let bao = OpenBao::start().await;
    bao.enable_jwt_auth(&launcher.info().jwks_url, &launcher.info().issuer)
        .await;
    let engine = engine();
    let claim_sets = claim_sets();
    let tokens: Vec<(String, Value)> = claim_sets
        .iter()
        .map(|claims| token(&key, &launcher, claims))
        .collect();

    let programs = programs();
    let (mut stored, mut refusals_agree, mut logins, mut decisions_agree) = (0, 0, 0, 0);
    let (mut messages, mut messages_agree) = (0, 0);
    let mut disagreements = Vec::new();
    for (index, expression) in programs.iter().enumerate() {
        let name = format!("r{index}");
        let role = role(&name, expression);
        let (status, body) = bao
            .write(&format!("auth/jwt/cel/role/{name}"), role.clone())
            .await;
        let openbao_stores = status < 300;
        let mut spec = plugin_spec("cel-role", role);
        if index % 2 == 1 {
            // As an operator may configure it: the role file without its name, which then comes
            // from the collaborator's configured role (handed to the plugin as its vault-role).
            spec.config.as_object_mut().unwrap().remove("name");
            spec.vault_role = Some(name.clone());
        }
        let plugin = engine.load(&spec);
        if openbao_stores != plugin.is_ok() {
            disagreements.push(format!(
                "{expression}: OpenBao {} it ({status} {body}), the plugin {}",
                if openbao_stores { "stores" } else { "refuses" },
                match &plugin {
                    Ok(_) => "accepts it".to_owned(),
                    Err(e) => format!("refuses it: {e}"),
                }
            ));
            continue;
        }
        refusals_agree += 1;
        let Ok(plugin) = plugin else { continue };
        stored += 1;
        for (jwt, claims) in &tokens {
            logins += 1;
            let (status, body) = bao.cel_login(&name, jwt).await;
            let verdict = plugin
                .evaluate(&claims.to_string(), attestgate::attestation::unix_now())
                .expect("the plugin decides")
                .verdict;
            let openbao_error = body["errors"][0].as_str().map(str::to_owned);
            assert!(
                status == 200 || (status == 400 && openbao_error.is_some()),
                "{expression}: unexpected login answer {status} {body}"
            );
            let openbao_allows = status == 200;
            if openbao_allows != verdict.allow {
                disagreements.push(format!(
                    "{expression} on {claims}: OpenBao {}, the plugin {}",
                    openbao_error.as_deref().unwrap_or("allows"),
                    denial(&verdict).as_deref().unwrap_or("allows")
                ));
                continue;
            }
            decisions_agree += 1;
            if let Some(expected) = openbao_error {
                messages += 1;
                if denial(&verdict).as_deref() == Some(expected.as_str()) {
                    messages_agree += 1;
                } else {
                    disagreements.push(format!(
                        "{expression}: OpenBao says {expected:?}, the plugin {:?}",
                        denial(&verdict)
                    ));
                }
            }
        }
    }
    let summary = format!(
        "cel-role against OpenBao 2.7.2: {} programs ({stored} stored), {} claim sets, {logins} logins\n\
         \x20 store or refuse: {refusals_agree}/{} agree ({:.1}%)\n\
         \x20 allow or deny:   {decisions_agree}/{logins} agree ({:.1}%)\n\
         \x20 denial message:  {messages_agree}/{messages} agree ({:.1}%)",
        programs.len(),
        claim_sets.len(),
        programs.len(),
        100.0 * refusals_agree as f64 / programs.len() as f64,
        100.0 * decisions_agree as f64 / logins.max(1) as f64,
        100.0 * messages_agree as f64 / messages.max(1) as f64,
    );
    println!("{summary}");
    // The suite prints this after the tests run (it is captured here when the test passes).
    let _ = std::fs::write(target_dir().join("cel-differential.txt"), &summary);
    assert!(
        disagreements.is_empty(),
        "{} disagreements:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
    // The generated space covers every outcome: allows, both kinds of block, unexpected types,
    // evaluation errors and refusals.
    assert!(stored < programs.len() && logins > messages && messages > 0);
}

#[tokio::test]
async fn a_collaborator_whose_openbao_uses_a_cel_role_completes_an_exchange() {
    let launcher = TestLauncher::start().await;
    let bao = OpenBao::start().await;
    // A classic role's side of the setup (JWT auth, the KV secret, the policy `bank-a-secrets`),
    // then the CEL role the collaborator really logs in with.
    bao.setup_collaborator(
        &launcher.info().jwks_url,
        "classic",
        json!({"role_type": "jwt", "user_claim": "sub", "bound_audiences": [AUDIENCE]}),
        &[("message", json!({"foo": "world"}))],
    )
    .await;
    let role = json!({
        "cel_program": {
            "variables": [{"name": "cs", "expression": "claims.submods.confidential_space"}],
            "expression": "claims.dbgstat == 'disabled-since-boot' && 'STABLE' in cs.support_attributes ? pb.Auth{policies: ['classic-secrets']} : 'not a production image'",
        },
        "bound_audiences": [AUDIENCE],
    });
    let (status, body) = bao.write("auth/jwt/cel/role/bank-a", role.clone()).await;
    assert!(status < 300, "{status} {body}");

    let dir = tempfile::tempdir().unwrap();
    let config = ConfigBuilder::local(dir.path(), launcher.info())
        .delivery_root(&dir.path().join("out"))
        .collaborator(
            Collaborator::new("bank-a", "cel-role")
                .audience(AUDIENCE)
                .plugin_config_file(role)
                .vault(Vault::from(&bao).role("bank-a").role_kind("cel"))
                .secret(Secret::at("kv/data/message").field("foo").env("BANK_A_FOO")),
        )
        .write();
    let report = run(&config).await;
    assert_succeeded(&report);
    let released = report.outcomes[0].result.as_ref().unwrap();
    assert_eq!(
        released.route,
        Route::JwtLogin {
            role: "bank-a".into(),
            kind: RoleKind::Cel
        }
    );
    assert!(released.policies.contains(&"classic-secrets".to_owned()));
    // The login went to the CEL endpoint: the classic role of the same name does not exist.
    let (status, _) = bao
        .jwt_login("bank-a", &launcher.token(AUDIENCE).await)
        .await;
    assert_eq!(status, 400, "no classic role named bank-a");
}

/// CEL has no loops, but nested comprehensions multiply: a role whose program builds a hundred
/// million strings is stopped by the deadline or the memory cap, and is a deny, like any other
/// plugin failure. The host stays healthy for the next collaborator.
#[test]
fn a_cel_program_that_explodes_is_stopped_and_denies() {
    let ten = "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]";
    let expression = format!(
        "{ten}.map(a, {ten}.map(b, {ten}.map(c, {ten}.map(d, {ten}.map(e, {ten}.map(f, {ten}.map(g, {ten}.map(h, 'x')))))))).size() > 0 ? pb.Auth{{}} : 'x'"
    );
    let mut spec = plugin_spec("cel-role", role("bomb", &expression));
    spec.limits = Limits {
        deadline_ms: 200,
        memory_bytes: 32 << 20,
        log_bytes: 4096,
    }
    .into();
    let engine = engine();
    let policy = engine.load(&spec).expect("the program type-checks");
    let claims = production_claims_at(AUDIENCE, attestgate::attestation::unix_now());
    let started = std::time::Instant::now();
    let error = policy
        .evaluate(&claims.to_string(), attestgate::attestation::unix_now())
        .expect_err("an exploding program has no verdict");
    assert!(
        matches!(
            error.failure(),
            Some(FailureKind::Deadline(_) | FailureKind::Memory(_))
        ),
        "{error}"
    );
    // A generous bound: the deadline stopped it, it did not run to completion.
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let good = engine
        .load(&plugin_spec("cel-role", role("good", "pb.Auth{}")))
        .unwrap();
    assert!(
        good.evaluate(&claims.to_string(), attestgate::attestation::unix_now())
            .unwrap()
            .verdict
            .allow
    );
}
