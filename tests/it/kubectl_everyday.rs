//! kubectl as the acceptance client: the everyday commands of the Kubernetes tutorials,
//! run by the real kubectl against a three-node lab running real demo pods, each checked
//! by what it prints, in the order a workshop attendee types them. What the lab will not
//! do (`exec`, `attach`, `port-forward`) is answered at once with a Status that says
//! what to do instead, never a hang. Skips (with a note) without kubectl.

use std::time::Duration;

use crate::lab_api::kubectl::Kubectl;

/// A three-node lab with short node grace periods, running the demo program.
async fn three_nodes() -> (resil_lab::Lab, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = resil_lab::LabConfig::new(dir.path());
    config.pod_program = std::path::PathBuf::from(env!("CARGO_BIN_EXE_resil"));
    config.nodes = resil_lab::NodeLayout::new(3);
    let lab = resil_lab::Lab::start(config).await.expect("lab starts");
    (lab, dir)
}

/// `kubectl ARGS` must succeed and print every one of `expect`.
async fn says(kubectl: &Kubectl, args: &[&str], expect: &[&str]) -> String {
    let out = kubectl.ok(args, None).await;
    for text in expect {
        assert!(
            out.contains(text),
            "kubectl {args:?} printed:\n{out}\nwithout {text:?}"
        );
    }
    out
}

/// `kubectl ARGS` must fail at once (well inside kubectl's own bound) saying `expect`.
async fn refuses(kubectl: &Kubectl, args: &[&str], expect: &str) {
    let started = std::time::Instant::now();
    let (ok, out, err) = kubectl.run(args, None).await;
    assert!(!ok, "kubectl {args:?} succeeded:\n{out}");
    assert!(err.contains(expect), "kubectl {args:?} said:\n{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "kubectl {args:?} hung"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everyday_kubectl_commands_work_on_a_three_node_lab() {
    let (lab, _dir) = three_nodes().await;
    let Some(k) = Kubectl::for_lab(&lab) else {
        return;
    };
    let ns = ["-n", "shop"];
    let with = |args: &[&'static str]| [&ns[..], args].concat();

    // Create what the tutorials create, as kubectl sends it (protobuf bodies included).
    says(
        &k,
        &["create", "namespace", "shop"],
        &["namespace/shop created"],
    )
    .await;
    let create = with(&[
        "create",
        "deployment",
        "web",
        "--image=resil-demo:1",
        "--replicas=2",
    ]);
    says(&k, &create, &["deployment.apps/web created"]).await;
    let cm = with(&[
        "create",
        "configmap",
        "settings",
        "--from-literal=GREETING=hi",
    ]);
    says(&k, &cm, &["configmap/settings created"]).await;
    let secret = with(&["create", "secret", "generic", "token", "--from-literal=T=s"]);
    says(&k, &secret, &["secret/token created"]).await;
    let pdb = with(&[
        "create",
        "pdb",
        "web",
        "--selector=app=web",
        "--min-available=1",
    ]);
    says(&k, &pdb, &["poddisruptionbudget.policy/web created"]).await;
    let expose = with(&[
        "expose",
        "deployment",
        "web",
        "--port=80",
        "--target-port=8080",
    ]);
    says(&k, &expose, &["service/web exposed"]).await;
    says(
        &k,
        &with(&["run", "one", "--image=resil-demo:1"]),
        &["pod/one created"],
    )
    .await;
    let scale = with(&["scale", "deployment", "web", "--replicas=3"]);
    says(&k, &scale, &["deployment.apps/web scaled"]).await;
    let status = with(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    says(&k, &status, &["successfully rolled out"]).await;
    let wait = with(&[
        "wait",
        "--for=condition=Available",
        "deployment/web",
        "--timeout=60s",
    ]);
    says(&k, &wait, &["condition met"]).await;

    // Rollouts: a new image, its history, back, pause, resume, restart.
    let set = with(&["set", "image", "deployment/web", "resil-demo=resil-demo:2"]);
    says(&k, &set, &["deployment.apps/web image updated"]).await;
    says(&k, &status, &["successfully rolled out"]).await;
    let history = with(&["rollout", "history", "deployment/web"]);
    says(&k, &history, &["REVISION", "1 ", "2 "]).await;
    let undo = with(&["rollout", "undo", "deployment/web"]);
    says(&k, &undo, &["deployment.apps/web rolled back"]).await;
    says(&k, &status, &["successfully rolled out"]).await;
    for (verb, done) in [
        ("pause", "paused"),
        ("resume", "resumed"),
        ("restart", "restarted"),
    ] {
        let args = with(&["rollout", verb, "deployment/web"]);
        says(&k, &args, &[&format!("deployment.apps/web {done}")]).await;
    }
    says(&k, &status, &["successfully rolled out"]).await;
    says(&k, &with(&["get", "rs"]), &["DESIRED", "web-"]).await;

    // Reading the cluster.
    let nodes = says(
        &k,
        &["get", "nodes", "-o", "wide"],
        &["INTERNAL-IP", "Ready"],
    )
    .await;
    assert_eq!(nodes.matches("lab-node-").count(), 3, "{nodes}");
    says(
        &k,
        &["describe", "node", "lab-node-2"],
        &["topology.kubernetes.io/zone", "Conditions:"],
    )
    .await;
    let svc = says(&k, &with(&["describe", "svc", "web"]), &["Endpoints:"]).await;
    assert!(!svc.contains("Endpoints:         <none>"), "{svc}");
    says(
        &k,
        &with(&["describe", "deploy", "web"]),
        &["NewReplicaSet:", "RollingUpdate"],
    )
    .await;
    says(
        &k,
        &with(&["label", "pod", "one", "tier=front"]),
        &["pod/one labeled"],
    )
    .await;
    says(
        &k,
        &with(&["annotate", "pod", "one", "note=x"]),
        &["pod/one annotated"],
    )
    .await;
    let logs = with(&["logs", "one", "--tail=5"]);
    crate::support::eventually(Duration::from_secs(20), "one's log", || async {
        let (ok, out, _) = k.run(&logs, None).await;
        (ok && out.contains("listening on")).then_some(())
    })
    .await;
    // `logs -f` streams: its first line arrives, and it keeps running until stopped.
    let mut follow = k.command(&with(&["logs", "-f", "one"]));
    follow.stdout(std::process::Stdio::piped());
    let mut child = follow.spawn().expect("kubectl logs -f starts");
    let mut lines =
        tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(child.stdout.take().unwrap()));
    let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("logs -f prints within 20 s")
        .unwrap();
    assert!(first.is_some_and(|l| l.contains("listening on")));
    assert!(
        child.try_wait().unwrap().is_none(),
        "logs -f ended by itself"
    );
    child.kill().await.unwrap();
    // Metrics arrive with the kubelet's first sample of every pod.
    for what in [&["top", "nodes"][..], &with(&["top", "pods"])] {
        crate::support::eventually(Duration::from_secs(40), "kubectl top", || async {
            let (ok, out, _) = k.run(what, None).await;
            (ok && out.contains("CPU(cores)")).then_some(())
        })
        .await;
    }

    // What the lab will not do is said at once.
    let unsupported = "does not support";
    refuses(&k, &with(&["exec", "one", "--", "ls"]), unsupported).await;
    refuses(
        &k,
        &with(&["port-forward", "pod/one", "18999:8080"]),
        unsupported,
    )
    .await;

    // Nodes: cordon keeps pods off, drain evicts within the PDB (and deletes the bare
    // pod `one` if it runs there, with --force).
    says(&k, &["cordon", "lab-node-1"], &["node/lab-node-1 cordoned"]).await;
    says(&k, &["get", "nodes"], &["SchedulingDisabled"]).await;
    says(
        &k,
        &["uncordon", "lab-node-1"],
        &["node/lab-node-1 uncordoned"],
    )
    .await;
    let drain = [
        "drain",
        "lab-node-2",
        "--ignore-daemonsets",
        "--force",
        "--timeout=60s",
    ];
    says(&k, &drain, &["node/lab-node-2 drained"]).await;
    says(&k, &["uncordon", "lab-node-2"], &["uncordoned"]).await;

    // Deletion with each cascade.
    let orphan = with(&["delete", "deployment", "web", "--cascade=orphan"]);
    says(&k, &orphan, &["deployment.apps \"web\" deleted"]).await;
    says(&k, &with(&["get", "rs"]), &["web-"]).await;
    let foreground = with(&["delete", "rs", "--all", "--cascade=foreground"]);
    says(&k, &foreground, &["deleted"]).await;
    let pods = with(&["get", "pods", "-l", "app=web", "-o", "name"]);
    crate::support::eventually(Duration::from_secs(30), "web's pods gone", || async {
        let (ok, out, _) = k.run(&pods, None).await;
        (ok && out.trim().is_empty()).then_some(())
    })
    .await;
    says(
        &k,
        &["delete", "namespace", "shop"],
        &["namespace \"shop\" deleted"],
    )
    .await;
    lab.shutdown().await;
}
