//! The dev launcher, running in this process or as the attestgate binary.

use super::{attestgate_bin, wait_for};
use attestgate::dev::{Launcher, LauncherConfig, LauncherInfo};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A dev launcher running in this process, in its own temporary directory.
pub struct TestLauncher {
    pub launcher: Launcher,
    pub dir: tempfile::TempDir,
}

impl TestLauncher {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(configure: impl FnOnce(&mut LauncherConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = LauncherConfig::new(dir.path());
        configure(&mut config);
        let launcher = Launcher::start(config).await.expect("dev launcher starts");
        TestLauncher { launcher, dir }
    }

    pub fn info(&self) -> &LauncherInfo {
        self.launcher.info()
    }

    pub async fn token(&self, audience: &str) -> String {
        let client = attestgate::attestation::LauncherClient::new(&self.info().socket);
        let request = attestgate::attestation::TokenRequest::new(audience);
        client
            .custom_token(&request)
            .await
            .expect("launcher mints a token")
            .expose()
            .to_owned()
    }
}

/// A dev launcher running as the attestgate binary, `attestgate dev launcher`, killed on drop.
pub struct LauncherProcess {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub info: LauncherInfo,
}

impl LauncherProcess {
    /// Starts it with `extra` arguments, and waits until it has written launcher.json.
    pub async fn start(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new(attestgate_bin())
            .args(["dev", "launcher", "--dir"])
            .arg(dir.path())
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let path = dir.path().to_owned();
        let info = wait_for("launcher.json", Duration::from_secs(30), || {
            let path = path.clone();
            async move { LauncherInfo::read(&path).ok() }
        })
        .await;
        LauncherProcess { child, dir, info }
    }

    /// Sends it SIGTERM.
    pub fn terminate(&mut self) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
    }
}

impl Drop for LauncherProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
