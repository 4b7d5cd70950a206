//! The demo app's write path as a real process: writes acknowledged per region, read
//! back, bounded, safe against hostile keys and bodies, and copied to a synchronous
//! replica before they are acknowledged, in the order the source stores them.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;

use crate::demo_app::{DemoApp, client};

/// Sends `request` as raw bytes and returns the status code (paths reqwest would
/// normalise, bodies it would frame for us).
fn raw_status(app: &DemoApp, request: &[u8]) -> u16 {
    let addr = app.base.strip_prefix("http://").unwrap();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // The server may answer and close before reading everything (a refused body).
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    let line = String::from_utf8_lossy(&answer);
    line.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {line:?}"))
}

#[tokio::test]
async fn a_write_is_acknowledged_in_its_region_and_reads_back_byte_for_byte() {
    let app = DemoApp::start();
    let c = client();
    let value: Vec<u8> = vec![0xff, 0x00, 0xfe, b'x'];
    let first = c
        .put(app.url("/kv/order-1"))
        .body(value.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 201);
    // `REGION@STORE:SEQ`: the store id tells a restarted process's acks apart.
    let ack_header = first.headers()["x-resil-ack"].to_str().unwrap().to_string();
    let store = ack_header
        .strip_prefix("eu-test@")
        .and_then(|rest| rest.strip_suffix(":1"))
        .unwrap_or_else(|| panic!("{ack_header}"))
        .to_string();
    assert_eq!(store.len(), 8, "{ack_header}");
    assert_eq!(first.headers()["x-resil-region"], "eu-test");
    let ack: Value = first.json().await.unwrap();
    assert_eq!(ack["region"], "eu-test");
    assert_eq!(ack["seq"], 1);
    assert_eq!(ack["ack"], ack_header);
    assert_eq!(ack["store"], store.as_str());
    assert_eq!(ack["bytes"], 4);
    assert_eq!(ack["replicated_to"], Value::Null);

    let other = c
        .put(app.url("/kv/order-2"))
        .body("b")
        .send()
        .await
        .unwrap();
    assert_eq!(
        other.headers()["x-resil-ack"],
        format!("eu-test@{store}:2").as_str()
    );
    let overwrite = c
        .put(app.url("/kv/order-1"))
        .body("new")
        .send()
        .await
        .unwrap();
    assert_eq!(overwrite.status(), 200, "an overwrite is not a new key");
    assert_eq!(
        overwrite.headers()["x-resil-ack"],
        format!("eu-test@{store}:3").as_str()
    );

    let read = c.get(app.url("/kv/order-2")).send().await.unwrap();
    assert_eq!(read.status(), 200);
    assert_eq!(
        read.headers()["x-resil-ack"],
        format!("eu-test@{store}:2").as_str()
    );
    assert_eq!(read.bytes().await.unwrap().as_ref(), b"b");
    let binary = c
        .put(app.url("/kv/bin"))
        .body(value.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(binary.status(), 201);
    let back = c.get(app.url("/kv/bin")).send().await.unwrap();
    assert_eq!(back.bytes().await.unwrap().as_ref(), &value[..]);

    let missing = c.get(app.url("/kv/nope")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.headers()["x-resil-region"], "eu-test");
    let body: Value = missing.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("nope"), "{body}");

    let state: Value = c
        .get(app.url("/admin/state"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["kv"]["keys"], 3);
    assert_eq!(state["kv"]["last_seq"], 4);
    assert_eq!(state["requests"]["by_class"]["kv"], 7);

    let feed: Value = c
        .get(app.url("/kv?after=1&limit=2"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys: Vec<_> = feed["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        keys,
        ["order-2", "order-1"],
        "latest write per key, in order"
    );
    assert_eq!(feed["pending"], 1);
    assert_eq!(feed["last_seq"], 4);
}

#[tokio::test]
async fn hostile_keys_and_bodies_are_refused_with_reasons_and_the_app_keeps_serving() {
    let app = DemoApp::start_with(&["--kv-max-value", "1024", "--kv-max-keys", "2"]);
    let c = client();
    for path in [
        "/kv/..%2F..%2Fetc%2Fpasswd",
        "/kv/a/b",
        "/kv/%FF%FE",
        "/kv/a%00b",
    ] {
        let response = c.put(app.url(path)).body("x").send().await.unwrap();
        assert_eq!(response.status(), 400, "{path}");
        let body: Value = response.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap().contains("invalid key"),
            "{path}: {body}"
        );
    }
    let long = format!("/kv/{}", "k".repeat(300));
    assert_eq!(c.get(app.url(&long)).send().await.unwrap().status(), 400);
    // Dot segments sent as they are (a client library would resolve them).
    assert_eq!(
        raw_status(
            &app,
            b"GET /kv/../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n"
        ),
        400
    );

    let big = c
        .put(app.url("/kv/big"))
        .body(vec![b'x'; 1025])
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), 413);
    let body: Value = big.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("--kv-max-value"),
        "{body}"
    );
    // A huge announced body is refused from its Content-Length, before it is sent.
    assert_eq!(
        raw_status(
            &app,
            b"PUT /kv/huge HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000000\r\n\r\nxx"
        ),
        413
    );
    // A streamed body is cut off once it passes the limit.
    let mut chunked =
        b"PUT /kv/streamed HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..3 {
        chunked.extend_from_slice(b"200\r\n");
        chunked.extend_from_slice(&[b'y'; 0x200]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    assert_eq!(raw_status(&app, &chunked), 413);

    for key in ["one", "two"] {
        let ok = c
            .put(app.url(&format!("/kv/{key}")))
            .body("v")
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), 201);
    }
    let full = c.put(app.url("/kv/three")).body("v").send().await.unwrap();
    assert_eq!(full.status(), 507);
    let body: Value = full.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("--kv-max-keys"),
        "{body}"
    );
    assert_eq!(
        c.get(app.url("/kv/big")).send().await.unwrap().status(),
        404
    );
    assert_eq!(c.get(app.url("/")).send().await.unwrap().status(), 200);
    assert_eq!(
        c.get(app.url("/kv/one")).send().await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn with_a_replica_a_write_is_acknowledged_only_after_the_copy() {
    let replica = DemoApp::start();
    let primary = DemoApp::start_with(&["--replica-url", &replica.base]);
    let c = client();
    let put = c
        .put(primary.url("/kv/k1"))
        .body("v1")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
    let ack: Value = put.json().await.unwrap();
    assert_eq!(ack["replicated_to"], replica.base.as_str());
    let copy = c.get(replica.url("/kv/k1")).send().await.unwrap();
    assert_eq!(
        copy.status(),
        200,
        "the copy is there when the write is acknowledged"
    );
    assert_eq!(copy.bytes().await.unwrap().as_ref(), b"v1");

    // The replica is gone: no acknowledgement, and nothing stored here either.
    drop(replica);
    let refused = c
        .put(primary.url("/kv/k2"))
        .body("v2")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("not acknowledged"),
        "{body}"
    );
    assert_eq!(
        c.get(primary.url("/kv/k2")).send().await.unwrap().status(),
        404
    );

    // Synchronous replication switched off at runtime: local acknowledgements again.
    let off = c
        .delete(primary.url("/admin/replica"))
        .send()
        .await
        .unwrap();
    assert_eq!(off.status(), 200);
    let local = c
        .put(primary.url("/kv/k2"))
        .body("v2")
        .send()
        .await
        .unwrap();
    assert_eq!(local.status(), 201);
    let bad = c
        .put(primary.url("/admin/replica"))
        .body(r#"{"url":"ftp://x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_of_one_key_leave_the_replica_with_the_value_the_source_keeps() {
    let replica = DemoApp::start();
    let primary = DemoApp::start_with(&["--replica-url", &replica.base]);
    let c = client();
    for key in ["hot-1", "hot-2", "hot-3"] {
        let url = primary.url(&format!("/kv/{key}"));
        let writes = (0..40).map(|i| {
            let put = c.put(&url).body(format!("value-{i}"));
            async move { put.send().await.unwrap().status() }
        });
        let statuses = futures::future::join_all(writes).await;
        assert!(statuses.iter().all(|s| s.is_success()), "{statuses:?}");
        let read = |base: &DemoApp| {
            let get = c.get(base.url(&format!("/kv/{key}")));
            async move { get.send().await.unwrap().text().await.unwrap() }
        };
        let (kept, copied) = (read(&primary).await, read(&replica).await);
        assert_eq!(
            kept, copied,
            "{key}: the replica must hold the value the source kept"
        );
    }
}
