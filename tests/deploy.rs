//! The Confidential Space image (`Dockerfile`, `deploy/`): no image builder can pull base images
//! here, so these check what can be checked without one. The build runs the commands the README
//! documents, the entrypoint is the agent, the launch policy allows no override, and the
//! configuration baked into the image loads, plugins and all.

use crate::harness::plugins::{plugin_wasm, sha256_file};
use crate::harness::workspace_root;
use std::path::Path;

fn dockerfile() -> String {
    std::fs::read_to_string(workspace_root().join("Dockerfile")).unwrap()
}

#[test]
fn the_image_is_built_with_the_readmes_commands_and_runs_the_agent() {
    let dockerfile = dockerfile();
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).unwrap();
    let production = "cargo build --release -p attestgate --no-default-features --features engine";
    assert!(readme.contains(production));
    let run_lines: Vec<String> = dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix("RUN "))
        .map(|l| l.replace(" --locked", ""))
        .collect();
    assert!(run_lines.iter().any(|l| l == production), "{run_lines:?}");
    assert!(
        run_lines
            .iter()
            .any(|l| l == "cd plugins && cargo build --release"),
        "{run_lines:?}"
    );
    assert!(dockerfile.contains(
        r#"ENTRYPOINT ["/usr/local/bin/attestgate", "agent", "--config", "/etc/attestgate/attestgate.toml", "--"]"#
    ));
    assert!(dockerfile.contains(r#"LABEL "tee.launch_policy.log_redirect"="debugonly""#));
    for override_label in ["allow_cmd_override", "allow_env_override"] {
        assert!(
            !dockerfile.contains(override_label),
            "{override_label}: an override would run what the collaborators did not approve"
        );
    }
}

#[tokio::test]
async fn the_configuration_baked_into_the_image_loads_with_its_plugins() {
    // The image's /etc/attestgate, with the plugins this build produced and their digests.
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc-attestgate");
    std::fs::create_dir_all(etc.join("plugins")).unwrap();
    let deploy = workspace_root().join("deploy");
    copy_dir(&deploy.join("plugin-config"), &etc.join("plugin-config"));
    let mut config = std::fs::read_to_string(deploy.join("attestgate.toml")).unwrap();
    for plugin in ["bound-claims", "confidential-space"] {
        let wasm = plugin_wasm(plugin);
        let name = wasm.file_name().unwrap().to_str().unwrap().to_owned();
        std::fs::copy(&wasm, etc.join("plugins").join(&name)).unwrap();
        config = config.replacen(
            "REPLACE-WITH-THE-BUILT-PLUGIN-SHA256",
            &sha256_file(&wasm),
            1,
        );
    }
    let path = etc.join("attestgate.toml");
    std::fs::write(&path, config).unwrap();
    let config = attestgate::config::Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.collaborators.len(), 2);
    assert!(config.agent.listen.is_some_and(|a| a.ip().is_loopback()));
    attestgate::exchange::Exchange::start(&config, attestgate::config::RunKind::OneShot)
        .await
        .unwrap_or_else(|e| panic!("{}", attestgate::error_chain(&e)));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}
