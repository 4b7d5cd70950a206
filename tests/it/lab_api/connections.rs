//! Connection bounds, seen from a raw TCP/TLS client on loopback: a silent connection,
//! a half-sent header and a trickled body are cut off after their timeouts (shortened
//! here), and connections past the cap wait until a slot frees.

use std::sync::Arc;
use std::time::{Duration, Instant};

use resil_lab::{Lab, LabConfig};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// An API-only lab whose connection limits `tune` sets.
async fn lab_with(dir: &tempfile::TempDir, tune: impl FnOnce(&mut LabConfig)) -> Lab {
    let mut config = LabConfig::new(dir.path());
    config.runtime = false;
    tune(&mut config);
    Lab::start(config).await.expect("lab starts")
}

async fn tls(lab: &Lab) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(lab.addr()).await.unwrap();
    tls_over(lab.ca_pem().to_string(), tcp).await.unwrap()
}

async fn tls_over(ca_pem: String, tcp: TcpStream) -> std::io::Result<TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
}

/// Reads until the server closes the connection (EOF or an error), at most `limit`;
/// returns what arrived and when it closed, or None if it is still open.
async fn closed_within(
    stream: &mut (impl AsyncRead + Unpin),
    limit: Duration,
) -> Option<(Vec<u8>, Duration)> {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.checked_sub(start.elapsed())?;
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some((got, start.elapsed())),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

const SHORT: Duration = Duration::from_millis(600);

#[tokio::test]
async fn a_silent_tcp_connection_is_closed_after_the_handshake_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(&dir, |c| c.connections.handshake = SHORT).await;
    let mut tcp = TcpStream::connect(lab.addr()).await.unwrap();
    let (_, after) = closed_within(&mut tcp, Duration::from_secs(5))
        .await
        .expect("closed within 5 s");
    assert!(after >= SHORT / 2, "closed after {after:?}");
    lab.shutdown().await;
}

#[tokio::test]
async fn an_idle_tls_connection_and_a_half_sent_header_are_closed_after_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(&dir, |c| c.connections.header_read = SHORT).await;

    let mut idle = tls(&lab).await;
    let (_, after) = closed_within(&mut idle, Duration::from_secs(5))
        .await
        .expect("an idle TLS connection is closed within 5 s");
    assert!(after >= SHORT / 2, "closed after {after:?}");

    let mut half = tls(&lab).await;
    half.write_all(b"GET /version HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        .await
        .unwrap();
    half.flush().await.unwrap();
    let (_, after) = closed_within(&mut half, Duration::from_secs(5))
        .await
        .expect("a half-sent header is cut off within 5 s");
    assert!(
        after >= SHORT / 2,
        "closed after {after:?}, before its timeout"
    );

    // Kept alive after a full request and answer, then idle: closed as well.
    let mut kept = tls(&lab).await;
    let request = format!(
        "GET /version HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\r\n",
        lab.token()
    );
    kept.write_all(request.as_bytes()).await.unwrap();
    let (answer, after) = closed_within(&mut kept, Duration::from_secs(5))
        .await
        .expect("an idle keep-alive connection is closed within 5 s");
    assert!(
        after >= SHORT / 2,
        "closed after {after:?}, before its timeout"
    );
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
    lab.shutdown().await;
}

#[tokio::test]
async fn a_trickled_request_body_gets_a_408_status() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(&dir, |c| c.connections.body_read = SHORT).await;
    let mut slow = tls(&lab).await;
    let request = format!(
        "POST /api/v1/namespaces/default/pods HTTP/1.1\r\nHost: localhost\r\n\
         Authorization: Bearer {}\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\n\r\n{{",
        lab.token()
    );
    slow.write_all(request.as_bytes()).await.unwrap();
    slow.flush().await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), slow.read(&mut buf))
        .await
        .expect("an answer within 5 s")
        .unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"reason\":\"Timeout\""), "{answer}");
    lab.shutdown().await;
}

#[tokio::test]
async fn connections_past_the_cap_wait_for_a_free_slot() {
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_with(&dir, |c| c.connections.max_connections = 2).await;
    let first = tls(&lab).await;
    let _second = tls(&lab).await;
    let tcp = TcpStream::connect(lab.addr()).await.unwrap();
    let third = tls_over(lab.ca_pem().to_string(), tcp);
    tokio::pin!(third);
    assert!(
        tokio::time::timeout(Duration::from_millis(500), &mut third)
            .await
            .is_err(),
        "a third connection is not served while two hold the slots"
    );
    drop(first);
    let mut third = tokio::time::timeout(Duration::from_secs(5), third)
        .await
        .expect("served once a slot frees")
        .unwrap();
    let request = format!(
        "GET /version HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\
         Connection: close\r\n\r\n",
        lab.token()
    );
    third.write_all(request.as_bytes()).await.unwrap();
    let (answer, _) = closed_within(&mut third, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
    lab.shutdown().await;
}
