//! Faults that overlap on one target: a second fault on a target with an open journal
//! entry is refused (the first's revert would otherwise undo it, or restore its value),
//! and a revert puts a value back only while it still holds what the fault set.

use super::*;

const FAULT: &str = "resil.dev/proxy-fault";

impl Demo {
    async fn proxy_fault(&self) -> Option<String> {
        let services: Api<Service> = Api::namespaced(self.client.clone(), NS);
        let web = services.get("web").await.unwrap();
        web.metadata.annotations.unwrap_or_default().remove(FAULT)
    }

    async fn set_proxy_fault(&self, value: &str) {
        let services: Api<Service> = Api::namespaced(self.client.clone(), NS);
        let patch = json!({"metadata": {"annotations": {FAULT: value}}});
        services
            .patch(
                "web",
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&patch),
            )
            .await
            .unwrap();
    }

    async fn scale_blue(&self, replicas: i32) {
        let patch = json!({"spec": {"replicas": replicas}});
        self.deployments()
            .patch(
                "web-blue",
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&patch),
            )
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_latency_on_the_service_is_refused_and_the_first_reverts_to_no_fault() {
    let demo = Demo::api_only(1).await;
    let first = demo.spawn(&["latency", "--delay", "100ms", "--duration", "3s"]);
    eventually(Duration::from_secs(10), "the first latency", || async {
        (demo.proxy_fault().await.as_deref() == Some("delay=100ms")).then_some(())
    })
    .await;
    let second = demo
        .run(&["chaos", "latency", "--delay", "200ms", "--duration", "1s"])
        .await;
    assert_eq!(second, Exit::Error, "refused while the first is open");
    assert_eq!(demo.proxy_fault().await.as_deref(), Some("delay=100ms"));
    assert_eq!(first.await.unwrap(), Exit::Ok);
    assert_eq!(demo.proxy_fault().await, None, "no fault is left behind");
    assert!(demo.journal().open_entries().unwrap().is_empty());
    demo.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_refusal_names_the_open_fault_and_the_revert_that_ends_it() {
    let demo = Demo::api_only(1).await;
    let first = demo.spawn(&["outage", "--color", "blue", "--duration", "4s"]);
    eventually(Duration::from_secs(10), "the outage", || async {
        (demo.replicas("blue").await == 0).then_some(())
    })
    .await;
    let open = demo.journal().open_entries().unwrap();
    let child = demo
        .binary(
            &demo.kubeconfig,
            &["outage", "--color", "blue", "--duration", "1s"],
        )
        .spawn()
        .unwrap();
    let (code, out, err) = finish(child, Duration::from_secs(30)).await;
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("deployment/web-blue already has an open fault"),
        "{err}"
    );
    assert!(err.contains(&open[0].id), "{err}");
    assert!(
        err.contains(&format!("resil chaos revert --id {}", open[0].id)),
        "{err}"
    );
    assert_eq!(first.await.unwrap(), Exit::Ok);
    assert_eq!(demo.replicas("blue").await, 1);
    demo.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revert_leaves_a_value_someone_changed_during_the_fault() {
    let demo = Demo::api_only(2).await;
    // An outage, during which the user scales blue by hand.
    let outage = demo.spawn(&["outage", "--color", "blue", "--duration", "2s"]);
    eventually(Duration::from_secs(10), "the outage", || async {
        (demo.replicas("blue").await == 0).then_some(())
    })
    .await;
    demo.scale_blue(4).await;
    assert!(
        !demo.journal().open_entries().unwrap().is_empty(),
        "the count was changed while the outage was still open"
    );
    assert_eq!(outage.await.unwrap(), Exit::Ok);
    assert_eq!(demo.replicas("blue").await, 4, "the user's count stays");
    // A latency fault, which someone replaces with their own.
    let latency = demo.spawn(&["latency", "--delay", "100ms", "--duration", "2s"]);
    eventually(Duration::from_secs(10), "the latency", || async {
        demo.proxy_fault().await.is_some().then_some(())
    })
    .await;
    demo.set_proxy_fault("delay=300ms").await;
    assert!(
        !demo.journal().open_entries().unwrap().is_empty(),
        "the fault was replaced while the latency was still open"
    );
    assert_eq!(latency.await.unwrap(), Exit::Ok);
    assert_eq!(demo.proxy_fault().await.as_deref(), Some("delay=300ms"));
    assert!(demo.journal().open_entries().unwrap().is_empty());
    demo.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_fault_on_a_degraded_pod_is_refused_and_its_switches_stay() {
    let demo = Demo::running(1).await;
    let pod = demo.ready_pods("blue").await.remove(0);
    let degrade = demo.spawn(&[
        "degrade",
        "--color",
        "blue",
        "--mode",
        "errors=50",
        "--duration",
        "5s",
    ]);
    eventually(Duration::from_secs(10), "the degradation", || async {
        (demo.faults(&pod).await["error_rate"] == json!(0.5)).then_some(())
    })
    .await;
    let burn = demo
        .run(&[
            "chaos",
            "cpu-burn",
            "--color",
            "blue",
            "--load",
            "20",
            "--duration",
            "1s",
        ])
        .await;
    assert_eq!(burn, Exit::Error, "refused while the degradation is open");
    let faults = demo.faults(&pod).await;
    assert_eq!(faults["error_rate"], json!(0.5), "{faults}");
    assert_eq!(degrade.await.unwrap(), Exit::Ok);
    assert_eq!(demo.faults(&pod).await["error_rate"], json!(0.0));
    demo.lab.shutdown().await;
}
