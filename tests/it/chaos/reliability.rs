//! The reliability promises: signals, vanished targets, lost API servers, the context
//! allowlist, dry runs, and the story in timeline and Events.

use super::*;

/// The binary running `chaos degrade errors=100` on the one blue pod for `duration`, once
/// blue answers 500; and that pod's name.
async fn failing_blue(demo: &Demo, duration: &str) -> (String, tokio::process::Child) {
    let pod = demo.ready_pods("blue").await.remove(0);
    let args = [
        "degrade",
        "--color",
        "blue",
        "--mode",
        "errors=100",
        "--duration",
    ];
    let mut args = args.to_vec();
    args.push(duration);
    let child = demo.binary(&demo.kubeconfig, &args).spawn().unwrap();
    eventually(Duration::from_secs(20), "blue to answer 500", || async {
        demo.all_answer(2, 500).await.then_some(())
    })
    .await;
    (pod, child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_outage_then_revert_restores_the_exact_replicas_and_a_second_revert_is_a_no_op()
{
    let demo = Demo::api_only(3).await;
    let child = outage_binary(&demo, "60s").await;
    kill(pid(&child), Signal::SIGKILL).unwrap();
    let (code, _, _) = finish(child, Duration::from_secs(10)).await;
    assert_eq!(code, -1, "killed by the signal");
    assert_eq!(demo.replicas("blue").await, 0, "nobody restored it yet");
    assert_eq!(demo.journal().open_entries().unwrap().len(), 1);

    let start = Instant::now();
    let first = demo.binary(&demo.kubeconfig, &["revert"]).spawn().unwrap();
    let (code, out, err) = finish(first, Duration::from_secs(30)).await;
    let took = start.elapsed();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("reverted outage"), "{out}");
    assert_eq!(demo.replicas("blue").await, 3, "exactly the count it had");
    assert!(demo.journal().open_entries().unwrap().is_empty());
    eprintln!("`resil chaos revert` restored web-blue 0 → 3 in {took:?} (process start included)");

    let rv = demo.blue_version().await;
    let second = demo.binary(&demo.kubeconfig, &["revert"]).spawn().unwrap();
    let (code, out, err) = finish(second, Duration::from_secs(30)).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("nothing to revert"), "{out}");
    let after = demo.blue_version().await;
    assert_eq!(rv, after, "the second revert wrote nothing");
    demo.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_during_degrade_reverts_the_switches_before_exit() {
    let demo = Demo::running(1).await;
    let (pod, child) = failing_blue(&demo, "60s").await;
    let start = Instant::now();
    kill(pid(&child), Signal::SIGINT).unwrap();
    let (code, out, err) = finish(child, Duration::from_secs(20)).await;
    let took = start.elapsed();
    assert_eq!(code, 130, "interrupted: {out}{err}");
    assert!(out.contains("reverted degrade"), "{out}");
    // Right after the process is gone, the pod answers normally: nothing waits for the
    // app's own deadline (60 s away).
    assert!(demo.all_answer(6, 200).await, "blue serves again at once");
    assert_eq!(demo.faults(&pod).await["error_rate"], json!(0.0));
    assert!(demo.journal().open_entries().unwrap().is_empty());
    eprintln!("Ctrl-C → switches reverted and exit in {took:?}");
    demo.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_context_outside_the_allowlist_is_refused_with_exit_2_and_nothing_changes() {
    let demo = Demo::api_only(2).await;
    let prod = demo.prod_kubeconfig();
    let rv = demo.blue_version().await;
    let child = demo
        .binary(&prod, &["outage", "--color", "blue", "--duration", "5s"])
        .spawn()
        .unwrap();
    let (code, out, err) = finish(child, Duration::from_secs(30)).await;
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("prod-eu") && err.contains("--allow-context"),
        "{err}"
    );
    let after = demo.blue_version().await;
    assert_eq!(rv, after);
    assert!(
        demo.journal().entries().unwrap().is_empty(),
        "nothing journaled"
    );
    demo.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_deleted_mid_outage_is_a_clear_error_with_exit_2_and_a_closed_entry() {
    let demo = Demo::api_only(2).await;
    let child = outage_binary(&demo, "5s").await;
    demo.deployments()
        .delete("web-blue", &DeleteParams::default())
        .await
        .unwrap();
    exits_2_with_a_closed_entry(&demo, child, |err| {
        err.contains("deployment/web-blue disappeared during the outage")
    })
    .await;
    demo.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_deleted_mid_degrade_is_a_clear_error_with_exit_2_and_a_closed_entry() {
    let demo = Demo::running(1).await;
    let (pod, child) = failing_blue(&demo, "4s").await;
    let pods: Api<Pod> = Api::namespaced(demo.client.clone(), NS);
    pods.delete(&pod, &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    exits_2_with_a_closed_entry(&demo, child, |err| {
        err.contains(&format!("pod/{pod} disappeared during the degrade"))
    })
    .await;
    demo.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn degrading_a_pod_that_is_not_running_is_a_clear_error_with_exit_2_and_a_closed_entry() {
    let demo = Demo::api_only(1).await;
    demo.blue_pods_that_never_run(1).await;
    let child = demo
        .binary(
            &demo.kubeconfig,
            &[
                "degrade",
                "--color",
                "blue",
                "--mode",
                "unready",
                "--duration",
                "30s",
            ],
        )
        .spawn()
        .unwrap();
    // Journaled before acting, closed once nothing was left in place.
    exits_2_with_a_closed_entry(&demo, child, |err| {
        err.contains("pod web-blue-0 cannot be reached through the API server's pod proxy")
            && err.contains("not running (phase Pending)")
    })
    .await;
    demo.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_server_lost_mid_outage_exits_2_keeps_the_entry_open_and_revert_finishes_later() {
    let demo = Demo::api_only(2).await;
    let child = outage_binary(&demo, "5s").await;
    let Demo {
        lab,
        state,
        dir,
        kubeconfig,
        ..
    } = demo;
    lab.shutdown().await;
    let journal = Journal::new(&dir.path().join("chaos-state"));
    let (code, out, err) = finish(child, Duration::from_secs(60)).await;
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("resil chaos revert"), "says what to do: {err}");
    assert_eq!(
        journal.open_entries().unwrap().len(),
        1,
        "the fault is still owed"
    );

    // The lab comes back (same state, maybe another port): revert finishes the job.
    let lab = support::start_api_only_lab_in(&state).await;
    std::fs::write(&kubeconfig, lab.kubeconfig_yaml()).unwrap();
    let client = support::client_for(&lab).await;
    let deployments: Api<Deployment> = Api::namespaced(client, NS);
    let replicas = |d: Deployment| d.spec.replicas.unwrap();
    assert_eq!(replicas(deployments.get("web-blue").await.unwrap()), 0);
    let exit = resil::run(
        Cli::try_parse_from([
            "resil",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "chaos",
            "revert",
            "--state-dir",
            dir.path().join("chaos-state").to_str().unwrap(),
        ])
        .unwrap(),
    )
    .await;
    assert_eq!(exit, Exit::Ok);
    assert_eq!(replicas(deployments.get("web-blue").await.unwrap()), 2);
    assert!(journal.open_entries().unwrap().is_empty());
    lab.shutdown().await;
}

/// Every object's resourceVersion in the namespace, plus the store's own.
async fn versions(demo: &Demo) -> BTreeMap<String, String> {
    let mut all = BTreeMap::new();
    for (kind, path) in [
        ("pod", format!("/api/v1/namespaces/{NS}/pods")),
        ("service", format!("/api/v1/namespaces/{NS}/services")),
        ("event", format!("/api/v1/namespaces/{NS}/events")),
        (
            "deployment",
            format!("/apis/apps/v1/namespaces/{NS}/deployments"),
        ),
        (
            "hpa",
            format!("/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers"),
        ),
    ] {
        let (code, _, list) = support::raw(&demo.client, "GET", &path, None, Vec::new()).await;
        assert_eq!(code, 200, "{path}");
        all.insert(
            format!("{kind} list"),
            list["metadata"]["resourceVersion"].to_string(),
        );
        for item in list["items"].as_array().unwrap() {
            all.insert(
                format!("{kind}/{}", item["metadata"]["name"]),
                item["metadata"]["resourceVersion"].to_string(),
            );
        }
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_changes_nothing_for_any_action() {
    let demo = Demo::api_only(2).await;
    demo.blue_pods_that_never_run(2).await;
    let before = versions(&demo).await;
    for args in [
        &[
            "chaos",
            "kill-pods",
            "--color",
            "blue",
            "--force",
            "--dry-run",
        ][..],
        &[
            "chaos",
            "outage",
            "--color",
            "blue",
            "--duration",
            "5s",
            "--dry-run",
        ],
        &[
            "chaos",
            "degrade",
            "--color",
            "blue",
            "--mode",
            "unready",
            "--duration",
            "5s",
            "--dry-run",
        ],
        &[
            "chaos",
            "cpu-burn",
            "--color",
            "blue",
            "--duration",
            "5s",
            "--dry-run",
        ],
        &[
            "chaos",
            "latency",
            "--delay",
            "100ms",
            "--duration",
            "5s",
            "--dry-run",
        ],
        &["chaos", "revert", "--dry-run"],
    ] {
        assert_eq!(demo.run(args).await, Exit::Ok, "{args:?}");
    }
    assert_eq!(versions(&demo).await, before, "no object changed");
    assert!(
        demo.journal().entries().unwrap().is_empty(),
        "nothing journaled"
    );
    demo.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_tells_its_story_in_the_timeline_and_in_kubernetes_events() {
    let demo = Demo::api_only(2).await;
    let out = demo.dir.path().join("results");
    let exit = demo
        .run(&[
            "chaos",
            "outage",
            "--color",
            "blue",
            "--duration",
            "1s",
            "--out",
            out.to_str().unwrap(),
        ])
        .await;
    assert_eq!(exit, Exit::Ok);
    let timeline = std::fs::read_to_string(out.join("timeline.jsonl")).unwrap();
    let events: Vec<Value> = timeline
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["chaos_injected", "chaos_reverted"], "{timeline}");
    assert_eq!(events[0]["id"], events[1]["id"]);
    assert_eq!(events[0]["targets"], json!(["deployment/web-blue"]));
    assert_eq!(events[0]["source"], "chaos");
    assert!(
        out.join("run.json").is_file(),
        "report can open the directory"
    );

    let api: Api<Event> = Api::namespaced(demo.client.clone(), NS);
    let story: Vec<(String, String, String)> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref().is_some_and(|r| r.starts_with("Chaos")))
        .map(|e| {
            (
                e.reason.unwrap(),
                e.type_.unwrap_or_default(),
                format!(
                    "{}/{}",
                    e.involved_object.kind.unwrap_or_default(),
                    e.involved_object.name.unwrap_or_default()
                ),
            )
        })
        .collect();
    for (reason, type_) in [("ChaosInjected", "Warning"), ("ChaosReverted", "Normal")] {
        assert!(
            story.contains(&(reason.into(), type_.into(), "Deployment/web-blue".into())),
            "{reason}: {story:?}"
        );
    }
    if kubectl() {
        let text = kubectl_in(&demo, &["get", "events", "-n", NS]);
        assert!(
            text.contains("ChaosInjected") && text.contains("ChaosReverted"),
            "{text}"
        );
        assert!(text.contains("deployment/web-blue"), "{text}");
    }
    demo.lab.shutdown().await;
}

/// Waits for `child`: it must exit 2 with a message `says` accepts, leaving exactly one
/// journal entry, closed (nothing is owed).
async fn exits_2_with_a_closed_entry(
    demo: &Demo,
    child: tokio::process::Child,
    says: impl Fn(&str) -> bool,
) {
    let (code, out, err) = finish(child, Duration::from_secs(30)).await;
    assert_eq!(code, 2, "{out}{err}");
    assert!(says(&err), "{err}");
    assert_eq!(demo.journal().entries().unwrap().len(), 1);
    assert!(
        demo.journal().open_entries().unwrap().is_empty(),
        "closed: nothing is owed"
    );
}
