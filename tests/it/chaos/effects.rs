//! Each chaos command's effect, seen through the API and through the NodePort.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn degrade_errors_on_every_blue_pod_fails_blue_requests_until_reverted() {
    let demo = Demo::running(2).await;
    let blue = demo.ready_pods("blue").await;
    assert_eq!(blue.len(), 2);
    assert!(demo.all_answer(3, 200).await, "blue serves before");
    if kubectl() {
        let path = format!(
            "/api/v1/namespaces/{NS}/pods/{}:8080/proxy/healthz",
            blue[0]
        );
        assert_eq!(kubectl_in(&demo, &["get", "--raw", &path]).trim(), "ok");
    }

    let run = demo.spawn(&[
        "degrade",
        "--color",
        "blue",
        "--mode",
        "errors=100",
        "--duration",
        "6s",
    ]);
    eventually(
        Duration::from_secs(10),
        "every blue pod to answer 500",
        || async { demo.all_answer(6, 500).await.then_some(()) },
    )
    .await;
    for pod in &blue {
        assert_eq!(demo.faults(pod).await["error_rate"], json!(1.0), "{pod}");
    }
    assert_eq!(run.await.unwrap(), Exit::Ok);
    // Reverted before the command returned: the very next requests succeed.
    assert!(demo.all_answer(6, 200).await, "blue serves again");
    for pod in &blue {
        assert_eq!(demo.faults(pod).await["error_rate"], json!(0.0), "{pod}");
    }
    assert!(demo.journal().open_entries().unwrap().is_empty());
    demo.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn degrade_unready_takes_the_chosen_pod_out_of_the_endpoints_until_reverted() {
    let demo = Demo::running(2).await;
    let run = demo.spawn(&[
        "degrade",
        "--color",
        "blue",
        "--count",
        "1",
        "--seed",
        "3",
        "--mode",
        "unready",
        "--duration",
        "8s",
    ]);
    let chosen = eventually(
        Duration::from_secs(15),
        "a blue pod to leave the ready endpoints",
        || async {
            let (_, not_ready) = demo.endpoints().await;
            not_ready.into_iter().next()
        },
    )
    .await;
    let (ready, _) = demo.endpoints().await;
    assert!(
        !ready.contains(&chosen),
        "{chosen} is still a ready endpoint"
    );
    assert_eq!(
        ready.len(),
        1,
        "the other blue pod keeps serving: {ready:?}"
    );
    assert!(
        demo.all_answer(4, 200).await,
        "partial degradation: blue still answers"
    );
    assert_eq!(run.await.unwrap(), Exit::Ok);
    eventually(
        Duration::from_secs(15),
        "the pod to be a ready endpoint again",
        || async {
            let (ready, not_ready) = demo.endpoints().await;
            (ready.contains(&chosen) && not_ready.is_empty()).then_some(())
        },
    )
    .await;
    demo.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_pods_deletes_the_chosen_pod_and_its_deployment_replaces_it() {
    let demo = Demo::running(2).await;
    let before = demo.ready_pods("blue").await;
    let exit = demo
        .run(&[
            "chaos",
            "kill-pods",
            "--color",
            "blue",
            "--count",
            "1",
            "--force",
            "--seed",
            "1",
        ])
        .await;
    assert_eq!(exit, Exit::Ok);
    let after = eventually(
        Duration::from_secs(20),
        "two ready blue pods, one of them new",
        || async {
            let now = demo.ready_pods("blue").await;
            (now.len() == 2 && now != before).then_some(now)
        },
    )
    .await;
    let survivors = after.iter().filter(|p| before.contains(p)).count();
    assert_eq!(
        survivors, 1,
        "exactly one pod was killed: {before:?} → {after:?}"
    );
    eventually(
        Duration::from_secs(10),
        "the NodePort to answer",
        || async { demo.all_answer(3, 200).await.then_some(()) },
    )
    .await;
    // A kill has nothing to revert: the journal holds it closed.
    let entries = demo.journal().entries().unwrap();
    assert_eq!(entries.len(), 1);
    assert!(demo.journal().open_entries().unwrap().is_empty());
    demo.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_takes_the_colour_to_zero_and_restores_the_exact_replica_count() {
    let demo = Demo::running(2).await;
    let run = demo.spawn(&["outage", "--color", "blue", "--duration", "5s"]);
    eventually(Duration::from_secs(5), "blue scaled to 0", || async {
        (demo.replicas("blue").await == 0).then_some(())
    })
    .await;
    eventually(
        Duration::from_secs(15),
        "the NodePort to stop answering",
        || async {
            let (ready, _) = demo.endpoints().await;
            (ready.is_empty() && demo.through_node_port().await.is_none()).then_some(())
        },
    )
    .await;
    assert_eq!(run.await.unwrap(), Exit::Ok);
    assert_eq!(demo.replicas("blue").await, 2, "exactly the count it had");
    eventually(Duration::from_secs(20), "blue to serve again", || async {
        demo.all_answer(3, 200).await.then_some(())
    })
    .await;
    demo.lab.shutdown().await;
}

/// CPU of a pod in metrics.k8s.io, in millicores.
async fn cpu_millis(demo: &Demo, pod: &str) -> Option<f64> {
    let path = format!("/apis/metrics.k8s.io/v1beta1/namespaces/{NS}/pods/{pod}");
    let (code, _, body) = support::raw(&demo.client, "GET", &path, None, Vec::new()).await;
    if code != 200 {
        return None;
    }
    let cpu = body.pointer("/containers/0/usage/cpu")?.as_str()?;
    let nanos: f64 = cpu.strip_suffix('n')?.parse().ok()?;
    Some(nanos / 1e6)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_burn_raises_the_pods_cpu_in_pod_metrics_until_reverted() {
    let demo = Demo::running(1).await;
    let pod = demo.ready_pods("blue").await.remove(0);
    let run = demo.spawn(&[
        "cpu-burn",
        "--color",
        "blue",
        "--load",
        "60",
        "--duration",
        "8s",
    ]);
    let busy = eventually(
        Duration::from_secs(8),
        "the burn in the pod's metrics",
        || async { cpu_millis(&demo, &pod).await.filter(|m| *m >= 150.0) },
    )
    .await;
    assert_eq!(run.await.unwrap(), Exit::Ok);
    eventually(
        Duration::from_secs(10),
        "the pod's CPU to fall back",
        || async { cpu_millis(&demo, &pod).await.filter(|m| *m < 100.0) },
    )
    .await;
    eprintln!("cpu-burn --load 60: {busy:.0}m seen in metrics.k8s.io");
    demo.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_on_the_service_proxy_delays_each_connection_until_reverted() {
    let demo = Demo::running(1).await;
    let timed = || async {
        let start = Instant::now();
        let code = demo.through_node_port().await;
        (code, start.elapsed())
    };
    let run = demo.spawn(&["latency", "--delay", "400ms", "--duration", "6s"]);
    let services: Api<Service> = Api::namespaced(demo.client.clone(), NS);
    eventually(
        Duration::from_secs(5),
        "the proxy fault on the Service",
        || async {
            let svc = services.get("web").await.unwrap();
            svc.metadata
                .annotations?
                .get("resil.dev/proxy-fault")
                .filter(|v| v.starts_with("delay=400ms"))
                .map(|_| ())
        },
    )
    .await;
    let slow = eventually(Duration::from_secs(5), "a delayed answer", || async {
        let (code, took) = timed().await;
        (code == Some(200) && took >= Duration::from_millis(380)).then_some(took)
    })
    .await;
    assert_eq!(run.await.unwrap(), Exit::Ok);
    let svc = services.get("web").await.unwrap();
    let annotations = svc.metadata.annotations.unwrap_or_default();
    assert!(
        !annotations.contains_key("resil.dev/proxy-fault"),
        "{annotations:?}"
    );
    let fast = eventually(Duration::from_secs(5), "an undelayed answer", || async {
        let (code, took) = timed().await;
        (code == Some(200) && took < Duration::from_millis(300)).then_some(took)
    })
    .await;
    eprintln!("latency --delay 400ms: {slow:?} during, {fast:?} after");
    demo.lab.shutdown().await;
}
