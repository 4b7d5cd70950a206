//! The load client's HTTP/1.1 response parsing (`resil::load::http::Connection`): a
//! loopback server in this process answers with the input's bytes, written in pieces of an
//! input-chosen size so that heads, chunk-size lines and bodies arrive split, then closes
//! its side; the client sends up to four requests on the connection, as a virtual user
//! does while the connection stays reusable.
//!
//! Input layout: byte 0 holds flags (bit 0: the requests are HEAD; bits 1-7: the piece
//! size), the rest is what the server sends. Checked beyond "no panic": every exchange
//! ends (the server closing is an end) within 5 s.

#![no_main]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::LazyLock;
use std::sync::mpsc;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use resil::load::http::Connection;

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime builds")
});

/// The loopback server: it takes the next answer (pieces) from the channel for each
/// connection it accepts.
static SERVER: LazyLock<(SocketAddr, mpsc::SyncSender<(Vec<u8>, usize)>)> = LazyLock::new(|| {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let addr = listener.local_addr().expect("the bound address");
    let (tx, rx) = mpsc::sync_channel::<(Vec<u8>, usize)>(1);
    std::thread::spawn(move || {
        for (answer, piece) in rx {
            let Ok((mut stream, _)) = listener.accept() else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            for part in answer.chunks(piece.max(1)) {
                if stream.write_all(part).is_err() {
                    break;
                }
            }
            // Half-close, then drain the client's requests until it hangs up, so the
            // close is a clean EOF for the client and never a reset.
            let _ = stream.shutdown(std::net::Shutdown::Write);
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut sink = [0u8; 4096];
            while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
        }
    });
    (addr, tx)
});

const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: resil\r\n\r\n";
const HEAD_REQUEST: &[u8] = b"HEAD / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: resil\r\n\r\n";

fuzz_target!(|data: &[u8]| {
    let Some((&flags, answer)) = data.split_first() else {
        return;
    };
    let head = flags & 1 == 1;
    let piece = match flags >> 1 {
        0 => usize::MAX,
        n => n as usize,
    };
    let (addr, tx) = &*SERVER;
    tx.send((answer.to_vec(), piece))
        .expect("the server thread runs");
    RUNTIME.block_on(async {
        let exchanges = async {
            let Ok(mut conn) = Connection::open(*addr).await else {
                return;
            };
            let request = if head { HEAD_REQUEST } else { REQUEST };
            for _ in 0..4 {
                match conn.exchange(request, head).await {
                    Ok(reply) if reply.reusable => {}
                    _ => break,
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(5), exchanges)
            .await
            .expect("an exchange with a closed server ends");
    });
});
