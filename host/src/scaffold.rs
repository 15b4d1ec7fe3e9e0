//! `attestgate plugin new`: a collaborator's starting point in the language its team writes,
//! complete enough to build and test outside this repository on the first try.
//!
//! Every scaffold holds the rules, a configuration, two claims fixtures (a production workload
//! and a debug image), a `test.sh` that runs the golden checks with `attestgate plugin test
//! --expect`, and a README with the commands. What the language needs besides comes with it:
//!
//! - **rust**: a crate with a **vendored copy of the SDK** and the contract (`vendor/`, `wit/`),
//!   so it builds with nothing but crates.io; its `Cargo.lock` pins the versions this release was
//!   tested with.
//! - **python**: the rules, a vendored copy of the guest SDK and the contract, and a `build.sh`
//!   that installs the pinned, hash-checked componentize-py into a local `.venv`.
//! - **js**: the rules in `rules/policy.js`, a vendored copy of the guest SDK, attestgate's own
//!   build script (the engine features it disables and the imports it refuses), and
//!   `package.json` with the `package-lock.json` this release was tested with.
//! - **rego** and **cel**: a policy file for the reference plugins `rego_policy.wasm` and
//!   `cel_role.wasm`, which ship with attestgate; no toolchain at all.
//!
//! This module only produces the files (data); the CLI writes them.

use std::fmt;
use std::path::PathBuf;

/// The languages a plugin can be scaffolded in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// Rust, compiled to a component with the SDK.
    Rust,
    /// A Rego policy for the `rego-policy` reference plugin.
    Rego,
    /// An OpenBao CEL role for the `cel-role` reference plugin.
    Cel,
    /// Python, built into a component by componentize-py, with the guest SDK.
    Python,
    /// JavaScript, built into a component by componentize-js, with the guest SDK.
    JavaScript,
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Language::Rust => "rust",
            Language::Rego => "rego",
            Language::Cel => "cel",
            Language::Python => "python",
            Language::JavaScript => "js",
        })
    }
}

/// One file of a scaffold, relative to its directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaffoldFile {
    /// Where, under the new plugin's directory.
    pub path: PathBuf,
    /// What it holds.
    pub contents: String,
    /// Whether it is a script to run.
    pub executable: bool,
}

/// Why a scaffold cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// The name would not make a crate, package or directory name.
    #[error("plugin name {name:?} must start with a lowercase letter and hold only lowercase letters, digits and '-' (at most 64 characters), as in \"bank-a-rules\"")]
    InvalidName {
        /// The name given.
        name: String,
    },
}

/// The verification time the fixtures are valid at (and `test.sh` passes as `--at`).
const FIXTURE_TIME: &str = "1900000000";
const PRODUCTION_CLAIMS: &str = include_str!("../../tests/fixtures/golden/claims/production.json");
const DEBUG_CLAIMS: &str = include_str!("../../tests/fixtures/golden/claims/debug-image.json");
const CONTRACT: &str = include_str!("../../wit/policy.wit");

const SDK_FILES: &[(&str, &str)] = &[
    ("src/lib.rs", include_str!("../../plugins/sdk/src/lib.rs")),
    (
        "src/claims.rs",
        include_str!("../../plugins/sdk/src/claims.rs"),
    ),
    (
        "src/rules.rs",
        include_str!("../../plugins/sdk/src/rules.rs"),
    ),
    (
        "src/testing.rs",
        include_str!("../../plugins/sdk/src/testing.rs"),
    ),
];
const RUST_TEMPLATE: &str = include_str!("../../examples/plugin-template/src/lib.rs");
const PLUGINS_LOCK: &str = include_str!("../../plugins/Cargo.lock");
const PLUGINS_CARGO_CONFIG: &str = include_str!("../../plugins/.cargo/config.toml");
const REGO_POLICY: &str = include_str!("../../examples/rego/confidential-space.rego");
const REGO_DATA: &str = include_str!("../../examples/rego/confidential-space-data.json");
const CEL_ROLE: &str = include_str!("../../examples/cel/confidential-space-role.json");
const JS_TEMPLATE: &str = include_str!("../../plugins/js/minimal/policy.js");
const JS_SDK: &str = include_str!("../../plugins/js/sdk/attestgate.js");
const JS_BUILD: &str = include_str!("../../plugins/js/build.mjs");
const JS_PACKAGE: &str = include_str!("../../plugins/js/package.json");
const JS_LOCK: &str = include_str!("../../plugins/js/package-lock.json");
/// How `plugins/js/build.mjs` finds the repository root; a scaffold is its own root.
const JS_BUILD_ROOT: &str = "const root = resolve(here, '..', '..');";
const PYTHON_TEMPLATE: &str = include_str!("../../examples/python-template/app.py");
const PYTHON_SDK: &str = include_str!("../../plugins/python/attestgate_sdk.py");
const PYTHON_REQUIREMENTS: &str = include_str!("../../plugins/python/requirements.txt");

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
}

fn file(path: &str, contents: impl Into<String>) -> ScaffoldFile {
    ScaffoldFile {
        path: PathBuf::from(path),
        contents: contents.into(),
        executable: false,
    }
}

fn script(path: &str, contents: impl Into<String>) -> ScaffoldFile {
    ScaffoldFile {
        executable: true,
        ..file(path, contents)
    }
}

/// The audience and image digest the fixtures carry, so the scaffolded rules allow the
/// production fixture as generated.
fn fixture_values() -> (String, String) {
    let claims: serde_json::Value = serde_json::from_str(PRODUCTION_CLAIMS).unwrap_or_default();
    let text = |pointer: &str| {
        claims
            .pointer(pointer)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    (text("/aud"), text("/submods/container/image_digest"))
}

/// The `plugin_config` of the Rust, JavaScript and Python templates (audience, projects, image
/// digests), allowing the production fixture.
fn template_config() -> String {
    let (audience, digest) = fixture_values();
    format!(
        "{{\n  \"audience\": \"{audience}\",\n  \"projects\": [\"operator-project\"],\n  \"image_digests\": [\"{digest}\"]\n}}\n"
    )
}

/// The files of a new plugin called `name`, in `language`.
pub fn scaffold(name: &str, language: Language) -> Result<Vec<ScaffoldFile>, ScaffoldError> {
    if !valid_name(name) {
        return Err(ScaffoldError::InvalidName {
            name: name.to_owned(),
        });
    }
    let mut files = vec![
        file("claims/production.json", PRODUCTION_CLAIMS),
        file("claims/debug-image.json", DEBUG_CLAIMS),
    ];
    files.extend(match language {
        Language::Rust => rust(name),
        Language::Rego => rego(name),
        Language::Cel => cel(name),
        Language::Python => python(name),
        Language::JavaScript => javascript(name),
    });
    Ok(files)
}

/// The checks every `test.sh` ends with: the production fixture allowed, the debug one denied.
fn golden_checks(plugin: &str, config: &str) -> String {
    format!(
        r#"attestgate="${{ATTESTGATE:-attestgate}}"
for case in "production allow" "debug-image deny"; do
    set -- $case
    "$attestgate" plugin test "{plugin}" --claims "claims/$1.json" --plugin-config {config} \
        --at {FIXTURE_TIME} --expect "$2" > /dev/null
    echo "ok: claims/$1.json -> $2"
done
"#
    )
}

fn rust(name: &str) -> Vec<ScaffoldFile> {
    let crate_file = name.replace('-', "_");
    let mut files = vec![
        file(
            "Cargo.toml",
            format!(
                r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2021"
publish = false

# A workspace of its own, so it builds wherever it is copied.
[workspace]

[lib]
crate-type = ["cdylib"]

[dependencies]
# The SDK, vendored with the contract it was built for (wit/policy.wit).
attestgate-plugin-sdk = {{ path = "vendor/attestgate-plugin-sdk" }}
serde = {{ version = "1", features = ["derive"] }}

[dev-dependencies]
serde_json = "1"

[profile.release]
opt-level = 3
lto = true
codegen-units = 1
panic = "abort"
# Keep the name section: a trap then names the function it happened in.
strip = false
debug = false
"#
            ),
        ),
        file("Cargo.lock", PLUGINS_LOCK),
        file(
            ".cargo/config.toml",
            PLUGINS_CARGO_CONFIG.replace("target-dir = \"../target/plugins\"\n", ""),
        ),
        file("src/lib.rs", RUST_TEMPLATE),
        file("config.json", template_config()),
        file("wit/policy.wit", CONTRACT),
        file(
            "vendor/attestgate-plugin-sdk/Cargo.toml",
            r#"[package]
name = "attestgate-plugin-sdk"
version = "0.1.0"
edition = "2021"
license = "Apache-2.0"
publish = false

[dependencies]
serde = { version = "1", features = ["derive"] }
serde_json = "1"
wit-bindgen = "0.57"
"#,
        ),
        script(
            "test.sh",
            format!(
                r#"#!/bin/sh
# Builds the plugin, runs its unit tests natively, then the golden checks through attestgate.
set -eu
cd "$(dirname "$0")"
rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
cargo build --release
cargo test --target "$(rustc -vV | sed -n 's/^host: //p')"
{}"#,
                golden_checks(
                    &format!(
                        "${{CARGO_TARGET_DIR:-target}}/wasm32-wasip2/release/{crate_file}.wasm"
                    ),
                    "config.json"
                )
            ),
        ),
        file(
            "README.md",
            format!(
                r#"# {name}

An attestgate policy plugin in Rust: `src/lib.rs` holds the rules, `config.json` the
collaborator's `plugin_config`.

```sh
./test.sh        # build, unit tests (native), and the golden checks with attestgate plugin test
```

- Build: `cargo build --release` writes `target/wasm32-wasip2/release/{crate_file}.wasm` (the
  `.cargo/config.toml` makes wasm32-wasip2 the default target; `rustup target add wasm32-wasip2`).
- Unit tests run natively: `cargo test --target "$(rustc -vV | sed -n 's/^host: //p')"`.
- Try it on any claims: `attestgate plugin test target/wasm32-wasip2/release/{crate_file}.wasm
  --claims claims/production.json --plugin-config config.json --at {FIXTURE_TIME}`.
- The SDK is vendored in `vendor/attestgate-plugin-sdk` with the contract it implements
  (`wit/policy.wit`); replace both from a newer attestgate to move to its contract.
- Give the operator the `.wasm` and its sha256 (`attestgate plugin inspect`): the configuration
  pins it.
"#
            ),
        ),
    ];
    files.extend(SDK_FILES.iter().map(|(path, contents)| {
        // The vendored crate's contract sits two directories up, as in attestgate's tree.
        file(&format!("vendor/attestgate-plugin-sdk/{path}"), *contents)
    }));
    files
}

/// `json` with its top-level `name` (and the lockfile's root package's) set to `name`.
fn renamed_package(json: &str, name: &str) -> String {
    let mut value: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    value["name"] = serde_json::json!(name);
    if let Some(root) = value.pointer_mut("/packages/") {
        root["name"] = serde_json::json!(name);
    }
    serde_json::to_string_pretty(&value).unwrap_or_default() + "\n"
}

fn javascript(name: &str) -> Vec<ScaffoldFile> {
    vec![
        file("rules/policy.js", JS_TEMPLATE),
        file("sdk/attestgate.js", JS_SDK),
        file(
            "build.mjs",
            JS_BUILD.replace(JS_BUILD_ROOT, "const root = here;"),
        ),
        file("package.json", renamed_package(JS_PACKAGE, name)),
        file("package-lock.json", renamed_package(JS_LOCK, name)),
        file("wit/policy.wit", CONTRACT),
        file(".gitignore", "node_modules/\ntarget/\n"),
        file("config.json", template_config()),
        script(
            "build.sh",
            r#"#!/bin/sh
# Builds rules/policy.js into target/plugins/js/rules_js.wasm with componentize-js, installed
# from package-lock.json on first use.
set -eu
cd "$(dirname "$0")"
[ -d node_modules/@bytecodealliance/componentize-js ] || npm ci --no-audit --no-fund
node build.mjs rules
"#,
        ),
        script(
            "test.sh",
            format!(
                r#"#!/bin/sh
# Builds the plugin, then the golden checks through attestgate (each compiles the component:
# ten seconds or so).
set -eu
cd "$(dirname "$0")"
./build.sh
{}"#,
                golden_checks("target/plugins/js/rules_js.wasm", "config.json")
            ),
        ),
        file(
            "README.md",
            format!(
                r#"# {name}

An attestgate policy plugin in JavaScript: `rules/policy.js` holds the rules, `config.json` the
collaborator's `plugin_config`, `sdk/attestgate.js` the SDK (vendored with the contract,
`wit/policy.wit`).

```sh
./build.sh       # componentize-js (pinned by package-lock.json) -> target/plugins/js/rules_js.wasm
./test.sh        # build, then the golden checks with attestgate plugin test --expect
```

`build.mjs` is attestgate's own: it disables the engine features the sandbox does not grant
(`http`, `fetch-event`, `random`) and refuses a component that imports `wasi:http` or
`wasi:sockets`. Builds are not byte-for-byte reproducible (componentize-js), so give the operator
the file you tested and its sha256. See attestgate's `docs/js.md` for the SDK, the limits and the
costs.
"#
            ),
        ),
    ]
}

fn python(name: &str) -> Vec<ScaffoldFile> {
    let module = name.replace('-', "_");
    vec![
        file("app.py", PYTHON_TEMPLATE),
        file("attestgate_sdk.py", PYTHON_SDK),
        file("requirements.txt", PYTHON_REQUIREMENTS),
        file("wit/policy.wit", CONTRACT),
        file(".gitignore", ".venv/\n__pycache__/\n*.wasm\n"),
        file("config.json", template_config()),
        script(
            "build.sh",
            format!(
                r#"#!/bin/sh
# Builds app.py into {module}.wasm with componentize-py, installed (pinned, hash-checked) into .venv.
set -eu
cd "$(dirname "$0")"
[ -x .venv/bin/componentize-py ] || {{
    python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check --require-hashes -r requirements.txt
}}
env -u VIRTUAL_ENV .venv/bin/componentize-py -d wit/policy.wit -w plugin componentize app -p . -o {module}.wasm
echo "built {module}.wasm"
"#
            ),
        ),
        script(
            "test.sh",
            format!(
                r#"#!/bin/sh
# Builds the plugin, then the golden checks through attestgate (each compiles the component:
# about half a minute).
set -eu
cd "$(dirname "$0")"
./build.sh
{}"#,
                golden_checks(&format!("{module}.wasm"), "config.json")
            ),
        ),
        file(
            "README.md",
            format!(
                r#"# {name}

An attestgate policy plugin in Python: `app.py` holds the rules, `config.json` the collaborator's
`plugin_config`, `attestgate_sdk.py` the SDK (vendored with the contract, `wit/policy.wit`).

```sh
./build.sh       # componentize-py (pinned in requirements.txt, hash-checked) -> {module}.wasm
./test.sh        # build, then the golden checks with attestgate plugin test --expect
```

Import every module at the top of `app.py`: the component is a snapshot taken after import, and
the sandbox has no files to import from later. Builds are not byte-for-byte reproducible
(componentize-py), so give the operator the file you tested and its sha256. See attestgate's
`docs/python.md` for the SDK, the limits and the costs.
"#
            ),
        ),
    ]
}

fn rego(name: &str) -> Vec<ScaffoldFile> {
    let (audience, _) = fixture_values();
    vec![
        file("policy.rego", REGO_POLICY),
        file("data.json", REGO_DATA),
        script(
            "test.sh",
            format!(
                r#"#!/bin/sh
# Assembles plugin_config (config.json) from policy.rego and data.json, then runs the golden
# checks with the rego-policy plugin that ships with attestgate.
set -eu
cd "$(dirname "$0")"
: "${{REGO_POLICY_WASM:?set REGO_POLICY_WASM to the rego_policy.wasm shipped with attestgate}}"
python3 - <<'EOF'
import json
config = {{"audience": "{audience}", "policy": open("policy.rego").read(),
          "data": json.load(open("data.json"))}}
json.dump(config, open("config.json", "w"), indent=2)
EOF
{}"#,
                golden_checks("$REGO_POLICY_WASM", "config.json")
            ),
        ),
        file(
            "README.md",
            format!(
                r#"# {name}

An attestgate policy in Rego, for the `rego-policy` plugin that ships with attestgate
(`rego_policy.wasm`). `policy.rego` holds the rules (`allow`, and `deny` messages), `data.json`
the allowed values.

```sh
REGO_POLICY_WASM=/path/to/rego_policy.wasm ./test.sh
```

`test.sh` writes `config.json` (the collaborator's `plugin_config`: the audience, the policy text
and the data) and checks that the production fixture is allowed and the debug image denied. See
attestgate's `docs/rego.md` for the entry points and what fails closed.
"#
            ),
        ),
    ]
}

fn cel(name: &str) -> Vec<ScaffoldFile> {
    vec![
        file("role.json", CEL_ROLE),
        script(
            "test.sh",
            format!(
                r#"#!/bin/sh
# The golden checks with the cel-role plugin that ships with attestgate: role.json is the
# plugin_config, unchanged.
set -eu
cd "$(dirname "$0")"
: "${{CEL_ROLE_WASM:?set CEL_ROLE_WASM to the cel_role.wasm shipped with attestgate}}"
{}"#,
                golden_checks("$CEL_ROLE_WASM", "role.json")
            ),
        ),
        file(
            "README.md",
            format!(
                r#"# {name}

An OpenBao CEL login role (`role.json`), checked inside the TEE by attestgate's `cel-role`
plugin exactly as OpenBao's `auth/<mount>/cel/login` would check it.

```sh
CEL_ROLE_WASM=/path/to/cel_role.wasm ./test.sh
bao write auth/jwt/cel/role/{name} @role.json     # the same JSON, in your OpenBao
```

The operator's configuration for this collaborator: `plugin = "cel_role.wasm"`,
`plugin_config_file = "role.json"`, and in `[collaborator.vault]` `role = "{name}"` and
`role_kind = "cel"`.
"#
            ),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn names_that_would_not_make_a_crate_or_directory_are_refused() {
        for bad in [
            "",
            "Bank",
            "1rules",
            "rules/../x",
            "rules_",
            "a b",
            "rules-",
        ] {
            assert!(scaffold(bad, Language::Cel).is_err(), "{bad:?}");
        }
        assert!(scaffold("bank-a-rules", Language::Cel).is_ok());
    }

    #[test]
    fn the_javascript_build_script_is_pointed_at_the_scaffold() {
        // attestgate's build.mjs finds the repository root on this line; a scaffold is its own.
        assert!(JS_BUILD.contains(JS_BUILD_ROOT));
        let files = scaffold("bank-a-js", Language::JavaScript).unwrap();
        let build = files
            .iter()
            .find(|f| f.path == Path::new("build.mjs"))
            .unwrap();
        assert!(build.contents.contains("const root = here;"));
        let lock = files
            .iter()
            .find(|f| f.path == Path::new("package-lock.json"))
            .unwrap();
        let lock: serde_json::Value = serde_json::from_str(&lock.contents).unwrap();
        assert_eq!(lock["name"], "bank-a-js");
        assert_eq!(lock["packages"][""]["name"], "bank-a-js");
    }

    #[test]
    fn every_scaffold_has_fixtures_a_test_script_and_a_readme() {
        for language in [
            Language::Rust,
            Language::Python,
            Language::Rego,
            Language::Cel,
        ] {
            let files = scaffold("bank-a-rules", language).unwrap();
            for wanted in [
                "claims/production.json",
                "claims/debug-image.json",
                "README.md",
            ] {
                assert!(
                    files.iter().any(|f| f.path.as_path() == Path::new(wanted)),
                    "{language}: {wanted}"
                );
            }
            let test = files
                .iter()
                .find(|f| f.path.as_path() == Path::new("test.sh"));
            assert!(test.is_some_and(|f| f.executable && f.contents.contains("--expect")));
        }
    }
}
