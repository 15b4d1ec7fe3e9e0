//! A real three-node OpenBao Raft cluster loses its leader (SIGKILL) while exchanges run back to
//! back and an agent keeps a secret fresh: every exchange ends within its deadline, succeeding
//! or failing with the step and cause named; nothing is delivered partially; once a new leader
//! is elected exchanges succeed again, with nothing restarted; and the agent serves the last good
//! secret throughout, then picks up a rotation by itself.
//!
//! Slow (a cluster takes about 20 s to have three voters): `#[ignore]`d, run by `./tests/run.sh`
//! unless `ATTESTGATE_SLOW=0`.

use crate::harness::config::{Collaborator, ConfigBuilder, Secret, Vault};
use crate::harness::exchange::prepare;
use crate::harness::launcher::TestLauncher;
use crate::harness::raft::RaftCluster;
use crate::harness::{agent_process, corrected_role, file_holds, target_dir, wait_for};
use serde_json::json;
use std::time::{Duration, Instant};

const DEADLINE_SECONDS: u64 = 20;

#[tokio::test]
#[ignore = "slow suite: a three-node Raft cluster; ./tests/run.sh runs it"]
async fn exchanges_ride_through_the_raft_leader_being_killed() {
    let launcher = TestLauncher::start().await;
    let mut cluster = RaftCluster::start(3).await;
    cluster
        .setup_collaborator(
            &launcher.info().jwks_url,
            "bank-a",
            corrected_role(),
            &[
                ("message", json!({"foo": "world"})),
                ("other", json!({"bar": "baz"})),
            ],
        )
        .await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let (foo, bar) = (out.join("bank-a/foo"), out.join("bank-a/bar"));
    let addresses = cluster.addresses();
    let addresses: Vec<&str> = addresses.iter().map(String::as_str).collect();
    let config = ConfigBuilder::local(dir.path(), launcher.info())
        .delivery_root(&out)
        .deadline(&format!("{DEADLINE_SECONDS}s"))
        .collaborator(
            Collaborator::bound_claims("bank-a", corrected_role())
                .vault(Vault::cluster(&addresses).role("bank-a"))
                .secret(Secret::at("kv/data/message").field("foo").file(&foo))
                .secret(Secret::at("kv/data/other").field("bar").file(&bar)),
        )
        .write();
    let exchange = prepare(&config).await;

    // The agent, on the same cluster, re-exchanging every 2 s: it must keep serving the last good
    // secret through the failover, and pick up a rotation afterwards by itself.
    let agent_out = dir.path().join("agent-out");
    let agent_foo = agent_out.join("bank-a/foo");
    let agent_dir = dir.path().join("agent");
    std::fs::create_dir_all(&agent_dir).unwrap();
    let agent_config = ConfigBuilder::local(&agent_dir, launcher.info())
        .delivery_root(&agent_out)
        .deadline(&format!("{DEADLINE_SECONDS}s"))
        .agent("refresh", "2s")
        .agent("backoff_min", "200ms")
        .agent("backoff_max", "1s")
        .collaborator(
            Collaborator::bound_claims("bank-a", corrected_role())
                .vault(Vault::cluster(&addresses).role("bank-a"))
                .secret(Secret::at("kv/data/message").field("foo").file(&agent_foo)),
        )
        .write();
    let mut agent = agent_process(&agent_config);
    wait_for(
        "the agent's first delivery",
        Duration::from_secs(60),
        file_holds(&agent_foo, "world"),
    )
    .await;
    let delivered_whole = || {
        std::fs::read_to_string(&foo).ok().as_deref() == Some("world")
            && std::fs::read_to_string(&bar).ok().as_deref() == Some("baz")
    };

    // Exchanges back to back: two before the kill, then until three have succeeded after it.
    let started = Instant::now();
    let (mut killed_at, mut killed) = (None, None);
    let (mut successes_after, mut failures) = (0, Vec::new());
    let mut longest_during_failover = Duration::ZERO;
    let mut runs = 0;
    while successes_after < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "no recovery after the leader was killed: {failures:#?}"
        );
        if runs == 2 && killed.is_none() {
            let leader = cluster.leader().await.expect("a leader before the kill");
            cluster.kill(leader);
            killed = Some(leader);
            killed_at = Some(Instant::now());
        }
        assert_eq!(
            std::fs::read_to_string(&agent_foo).ok().as_deref(),
            Some("world"),
            "the agent keeps serving the last good secret"
        );
        let began = Instant::now();
        let report = exchange.run().await;
        let took = began.elapsed();
        runs += 1;
        assert!(
            took < Duration::from_secs(DEADLINE_SECONDS + 35),
            "an exchange took {took:?}, past its deadline"
        );
        if killed.is_some() {
            longest_during_failover = longest_during_failover.max(took);
        }
        // As `attestgate exchange` does: deliver what the exchange released (all or nothing).
        attestgate::exchange::deliver_files(&report, &out)
            .expect("delivery")
            .commit();
        let failure = report.failures().next();
        match failure {
            None => {
                assert!(
                    delivered_whole(),
                    "a successful exchange delivered everything"
                );
                if killed.is_some() {
                    successes_after += 1;
                }
            }
            Some(error) => {
                assert!(
                    killed.is_some(),
                    "an exchange failed before the kill: {error}"
                );
                let text = error.to_string();
                assert!(
                    text.contains("bank-a"),
                    "the failure names the collaborator: {text}"
                );
                assert!(!format!("{:?}", error.step).is_empty());
                // All or nothing: what an earlier exchange delivered is still whole.
                assert!(
                    delivered_whole(),
                    "a failed exchange left a partial delivery: {text}"
                );
                failures.push(format!(
                    "{:?} after {took:?}: {}",
                    error.step,
                    attestgate::error_chain(&*error.cause)
                ));
            }
        }
    }
    let recovered_after = killed_at.map(|t| t.elapsed()).unwrap_or_default();
    // A new leader, elected by the survivors.
    let new_leader = wait_for("a new leader", Duration::from_secs(30), || async {
        cluster.leader().await
    })
    .await;
    assert_ne!(Some(new_leader), killed);
    // The agent recovered by itself: a rotation on the new leader reaches its file.
    cluster
        .must_write("kv/data/message", json!({"data": {"foo": "world-2"}}))
        .await;
    wait_for(
        "the agent to deliver the rotated secret",
        Duration::from_secs(60),
        file_holds(&agent_foo, "world-2"),
    )
    .await;
    assert!(
        agent.try_wait().unwrap().is_none(),
        "the agent kept running"
    );
    agent.start_kill().unwrap();
    let summary = format!(
        "Raft failover (3 nodes, leader SIGKILLed after 2 exchanges): {runs} exchanges, {} failed cleanly, \
         longest during failover {:.1} s, 3 successes again {:.1} s after the kill; the agent served \
         the last good secret throughout and delivered a rotation after the failover",
        failures.len(),
        longest_during_failover.as_secs_f64(),
        recovered_after.as_secs_f64()
    );
    println!("{summary}");
    for failure in &failures {
        println!("  {failure}");
    }
    let _ = std::fs::write(
        target_dir().join("raft-failover.txt"),
        format!("{summary}\n"),
    );
}
