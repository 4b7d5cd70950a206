use super::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A backend that answers every connection with its name, then closes.
async fn backend(name: &'static str) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let _ = s.write_all(name.as_bytes()).await;
        }
    });
    addr
}

/// A loopback port nobody listens on.
async fn dead_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

async fn free_port() -> u16 {
    dead_port().await.port()
}

/// What a client reads through the node port: the backend's name, or `Err` when the
/// connection was reset or closed with nothing.
async fn ask(port: u16) -> Result<String, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .map_err(|_| "timeout".to_string())?
        .map_err(|e| e.to_string())?;
    if buf.is_empty() {
        return Err("closed".into());
    }
    Ok(String::from_utf8(buf).unwrap())
}

fn route(node_port: u16, endpoints: Vec<SocketAddr>, fault: ProxyFault) -> NodePortRoute {
    NodePortRoute {
        node_port,
        service: "default/web".into(),
        endpoints,
        fault,
    }
}

#[test]
fn fault_annotation_parses_delay_jitter_and_loss() {
    let f = ProxyFault::parse("delay=200ms, jitter=50ms,loss=5").unwrap();
    assert_eq!(f.delay, Duration::from_millis(200));
    assert_eq!(f.jitter, Duration::from_millis(50));
    assert_eq!(f.loss_percent, 5.0);
    assert_eq!(ProxyFault::parse("").unwrap(), ProxyFault::default());
    assert!(ProxyFault::parse("loss=150").is_err());
    assert!(ProxyFault::parse("delay=soon").is_err());
    let e = ProxyFault::parse("speed=1").unwrap_err().to_string();
    assert!(
        e.contains("unknown key") && e.contains("delay=200ms"),
        "{e}"
    );
}

#[test]
fn routes_pair_node_ports_with_ready_endpoint_addresses() {
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default",
                     "annotations": {FAULT_ANNOTATION: "delay=10ms"}},
        "spec": {"type": "NodePort", "selector": {"app": "web"},
                 "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}
    }))
    .unwrap();
    let cluster_ip: Service = serde_json::from_value(json!({
        "metadata": {"name": "db", "namespace": "default"},
        "spec": {"ports": [{"port": 5432}]}
    }))
    .unwrap();
    let ep: Endpoints = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default"},
        "subsets": [
            {"addresses": [{"ip": "127.0.0.1"}], "ports": [{"name": "http", "port": 41001}]},
            {"notReadyAddresses": [{"ip": "127.0.0.1"}], "ports": [{"name": "http", "port": 41002}]}
        ]
    }))
    .unwrap();
    let (routes, errors) = routes(&[svc, cluster_ip], &[ep]);
    assert!(errors.is_empty());
    assert_eq!(
        routes,
        vec![route(
            30080,
            vec!["127.0.0.1:41001".parse().unwrap()],
            ProxyFault {
                delay: Duration::from_millis(10),
                ..ProxyFault::default()
            }
        )]
    );
}

#[tokio::test]
async fn connections_go_round_robin_to_endpoints_and_skip_refusing_ones() {
    let (a, b, dead) = (backend("a").await, backend("b").await, dead_port().await);
    let port = free_port().await;
    let mut proxy = ServiceProxy::new(CancellationToken::new());
    assert!(
        proxy
            .apply(&[route(port, vec![a, dead, b], ProxyFault::default())])
            .await
            .is_empty()
    );
    let mut seen = Vec::new();
    for _ in 0..6 {
        seen.push(ask(port).await.unwrap());
    }
    assert_eq!(seen.iter().filter(|s| *s == "a").count(), 3, "{seen:?}");
    assert_eq!(seen.iter().filter(|s| *s == "b").count(), 3, "{seen:?}");
    proxy.stop().await;
}

#[tokio::test]
async fn no_ready_endpoint_closes_the_client_at_once() {
    let port = free_port().await;
    let mut proxy = ServiceProxy::new(CancellationToken::new());
    proxy
        .apply(&[route(port, vec![], ProxyFault::default())])
        .await;
    let started = std::time::Instant::now();
    assert!(ask(port).await.is_err());
    assert!(started.elapsed() < Duration::from_secs(1));
    proxy.stop().await;
}

#[tokio::test]
async fn endpoint_changes_apply_to_the_next_connection_and_removed_ports_close() {
    let (a, b) = (backend("a").await, backend("b").await);
    let port = free_port().await;
    let mut proxy = ServiceProxy::new(CancellationToken::new());
    proxy
        .apply(&[route(port, vec![a], ProxyFault::default())])
        .await;
    assert_eq!(ask(port).await.unwrap(), "a");
    proxy
        .apply(&[route(port, vec![b], ProxyFault::default())])
        .await;
    assert_eq!(ask(port).await.unwrap(), "b");
    assert_eq!(proxy.ports(), vec![port]);
    proxy.apply(&[]).await;
    assert!(proxy.ports().is_empty());
    // The listener task ends on its own; give it a moment, bounded.
    let mut refused = false;
    for _ in 0..50 {
        if TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused, "port still listening after its route was removed");
    proxy.stop().await;
}

#[tokio::test]
async fn the_fault_delays_connections_and_drops_the_lost_share() {
    let a = backend("a").await;
    let port = free_port().await;
    let mut proxy = ServiceProxy::new(CancellationToken::new());
    let delayed = ProxyFault {
        delay: Duration::from_millis(150),
        ..ProxyFault::default()
    };
    proxy.apply(&[route(port, vec![a], delayed)]).await;
    let started = std::time::Instant::now();
    assert_eq!(ask(port).await.unwrap(), "a");
    assert!(started.elapsed() >= Duration::from_millis(150));
    let lossy = ProxyFault {
        loss_percent: 100.0,
        ..ProxyFault::default()
    };
    proxy.apply(&[route(port, vec![a], lossy)]).await;
    for _ in 0..5 {
        assert!(ask(port).await.is_err());
    }
    proxy.stop().await;
}
