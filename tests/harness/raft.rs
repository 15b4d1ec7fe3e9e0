//! A real three-node OpenBao cluster on Raft storage, on loopback: nodes that unseal themselves
//! (`seal "static"`), join through `retry_join`, and can be killed one by one.
//!
//! Measured (`vault-jwt-auth.md`): after `kill -9` of the leader, standbys answer 307 for about
//! 9 s, then one 500 ("local node not active but active cluster node not found"), then 200.
//! Autopilot makes a joining node a voter only after about 10 s of stability; a leader killed
//! before three voters exist leaves two survivors that never elect one, so `start` waits for
//! three voters.

use super::openbao::{bao_binary, free_port_pair};
use super::wait_for;
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// One node: its API address and process (`None` once killed).
struct Node {
    addr: String,
    child: Option<Child>,
}

/// The cluster; every node is killed on drop.
pub struct RaftCluster {
    nodes: Vec<Node>,
    pub root_token: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

fn node_config(dir: &Path, index: usize, ports: &[u16]) -> String {
    let port = ports[index];
    let joins: String = ports
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != index)
        .map(|(_, p)| {
            format!("  retry_join {{\n    leader_api_addr = \"http://127.0.0.1:{p}\"\n  }}\n")
        })
        .collect();
    format!(
        "disable_mlock = true\n\
         api_addr = \"http://127.0.0.1:{port}\"\n\
         cluster_addr = \"http://127.0.0.1:{cluster}\"\n\
         storage \"raft\" {{\n  path = \"{data}\"\n  node_id = \"node{index}\"\n{joins}}}\n\
         listener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  cluster_address = \"127.0.0.1:{cluster}\"\n  tls_disable = true\n}}\n\
         seal \"static\" {{\n  current_key_id = \"test-1\"\n  current_key = \"file://{key}\"\n}}\n",
        cluster = port + 1,
        data = dir.join(format!("node{index}")).display(),
        key = dir.join("unseal.key").display(),
    )
}

impl RaftCluster {
    /// Starts `size` nodes, initialises the cluster through the first, and waits until every
    /// node is a voter.
    pub async fn start(size: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let key: [u8; 32] = rand::random();
        std::fs::write(dir.path().join("unseal.key"), key).unwrap();
        let ports: Vec<u16> = (0..size).map(|_| free_port_pair()).collect();
        let mut cluster = RaftCluster {
            nodes: Vec::new(),
            root_token: String::new(),
            http: reqwest::Client::new(),
            _dir: dir,
        };
        for index in 0..size {
            let dir = cluster._dir.path();
            std::fs::create_dir_all(dir.join(format!("node{index}"))).unwrap();
            let config = dir.join(format!("node{index}.hcl"));
            std::fs::write(&config, node_config(dir, index, &ports)).unwrap();
            let log = std::fs::File::create(dir.join(format!("node{index}.log"))).unwrap();
            let child = Command::new(bao_binary())
                .arg("server")
                .arg(format!("-config={}", config.display()))
                .env("HOME", dir)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("bao starts");
            cluster.nodes.push(Node {
                addr: format!("http://127.0.0.1:{}", ports[index]),
                child: Some(child),
            });
        }
        let first = cluster.nodes[0].addr.clone();
        let http = cluster.http.clone();
        wait_for("the first node to listen", Duration::from_secs(30), || {
            let http = http.clone();
            let url = format!("{first}/v1/sys/health");
            async move { http.get(url).send().await.ok().map(|_| ()) }
        })
        .await;
        let init: Value = cluster
            .http
            .put(format!("{first}/v1/sys/init"))
            .json(&json!({"recovery_shares": 1, "recovery_threshold": 1}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        cluster.root_token = init["root_token"]
            .as_str()
            .unwrap_or_else(|| panic!("init: {init}"))
            .to_owned();
        wait_for("three voters", Duration::from_secs(90), || async {
            let (status, body) = cluster
                .api(reqwest::Method::GET, "sys/storage/raft/configuration", None)
                .await;
            let servers = body["data"]["config"]["servers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let voters = servers.iter().filter(|s| s["voter"] == json!(true)).count();
            (status == 200 && voters == size).then_some(())
        })
        .await;
        cluster
    }

    /// Every node's API address, the dead ones included (as a client's configuration lists them).
    pub fn addresses(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.addr.clone()).collect()
    }

    /// The index of the current leader, asked of the live nodes; `None` while there is none.
    pub async fn leader(&self) -> Option<usize> {
        for node in self.nodes.iter().filter(|n| n.child.is_some()) {
            let Ok(response) = self
                .http
                .get(format!("{}/v1/sys/leader", node.addr))
                .send()
                .await
            else {
                continue;
            };
            let Ok(body) = response.json::<Value>().await else {
                continue;
            };
            let leader = body["leader_address"].as_str().unwrap_or_default();
            if let Some(index) = self
                .nodes
                .iter()
                .position(|n| n.addr == leader && n.child.is_some())
            {
                return Some(index);
            }
        }
        None
    }

    /// SIGKILLs node `index`.
    pub fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.nodes[index].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A root-token call on the leader (a standby forwards what it can, and redirects the rest).
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let target = match self.leader().await {
            Some(index) => self.nodes[index].addr.clone(),
            None => self.nodes[0].addr.clone(),
        };
        let mut request = self
            .http
            .request(method, format!("{target}/v1/{path}"))
            .header("X-Vault-Token", &self.root_token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                (status, response.json().await.unwrap_or(Value::Null))
            }
            Err(_) => (0, Value::Null),
        }
    }

    /// A write that must succeed (retried while a fresh KV mount upgrades, within a deadline).
    pub async fn must_write(&self, path: &str, body: Value) {
        wait_for(
            &format!("writing {path}"),
            Duration::from_secs(30),
            || async {
                let (status, response) = self
                    .api(reqwest::Method::POST, path, Some(body.clone()))
                    .await;
                (status < 300).then_some(()).or_else(|| {
                    assert!(
                        status == 0
                            || response
                                .to_string()
                                .contains("Upgrading from non-versioned")
                            || status >= 500,
                        "writing {path}: {status} {response}"
                    );
                    None
                })
            },
        )
        .await
    }

    /// bank-a's Vault side, as `OpenBao::setup_collaborator` makes it: JWT auth trusting
    /// `jwks_url`, `role`, a KV v2 mount with `secrets`, and a policy reading only them.
    pub async fn setup_collaborator(
        &self,
        jwks_url: &str,
        role_name: &str,
        mut role: Value,
        secrets: &[(&str, Value)],
    ) {
        self.must_write("sys/auth/jwt", json!({"type": "jwt"}))
            .await;
        self.must_write(
            "auth/jwt/config",
            json!({"jwks_url": jwks_url, "bound_issuer": attestgate::attestation::GOOGLE_ISSUER}),
        )
        .await;
        self.must_write(
            "sys/mounts/kv",
            json!({"type": "kv", "options": {"version": "2"}}),
        )
        .await;
        let mut policy = String::new();
        for (name, data) in secrets {
            self.must_write(&format!("kv/data/{name}"), json!({"data": data}))
                .await;
            policy.push_str(&format!(
                "path \"kv/data/{name}\" {{ capabilities = [\"read\"] }}\n"
            ));
        }
        let policy_name = format!("{role_name}-secrets");
        self.must_write(
            &format!("sys/policies/acl/{policy_name}"),
            json!({"policy": policy}),
        )
        .await;
        role["token_policies"] = json!([policy_name]);
        self.must_write(&format!("auth/jwt/role/{role_name}"), role)
            .await;
    }
}

impl Drop for RaftCluster {
    fn drop(&mut self) {
        for index in 0..self.nodes.len() {
            self.kill(index);
        }
    }
}
