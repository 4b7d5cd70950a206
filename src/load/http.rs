//! One virtual user's HTTP/1.1 connection: write the pre-encoded request, read and
//! discard the response, keep the connection for the next one.
//!
//! This is the load engine's hot path, so it does only what a load generator needs: one
//! `write` per request from bytes encoded once, responses parsed in place in a reused
//! buffer (`httparse`), bodies skipped (Content-Length, chunked, or read-to-close), no
//! allocation per request and no task hand-off. A connection holds a read buffer only
//! while it has bytes in it: it waits for a response without one, and takes one from its
//! thread's spares when the socket turns readable, so an open-model pool of thousands of
//! mostly idle or waiting connections costs a few buffers, not one each. A general client (hyper's) costs a
//! channel round trip and a task wake per request between the caller and the connection
//! task; at the request rates the engine must sustain on one core that overhead decides
//! whether resil keeps up with wrk. Knows nothing about statistics or pacing; the engine
//! calls it.

use std::cell::RefCell;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Poll, ready};

use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::plan::{ACK_HEADER, COLOR_HEADER, POD_HEADER, REGION_HEADER};

/// Read buffer size; responses whose headers exceed it are refused.
const BUF_SIZE: usize = 16 * 1024;
/// Most spare read buffers a thread keeps for reuse. A buffer is in use only between a
/// read and the end of parsing what it read, which on one thread is rarely more than a
/// few connections at once (those holding part of a response).
const SPARES_KEPT: usize = 64;

thread_local! {
    /// This thread's read buffers not in use, last returned first out.
    static SPARES: RefCell<Vec<Box<[u8]>>> = const { RefCell::new(Vec::new()) };
}

/// A read buffer: a spare of this thread's, or a new one.
fn take_buffer() -> Box<[u8]> {
    SPARES
        .with_borrow_mut(Vec::pop)
        .unwrap_or_else(|| vec![0; BUF_SIZE].into_boxed_slice())
}

/// Returns a buffer to this thread's spares (or frees it when enough are kept).
fn give_back(buf: Box<[u8]>) {
    SPARES.with_borrow_mut(|spares| {
        if spares.len() < SPARES_KEPT {
            spares.push(buf);
        }
    });
}
/// Most response headers parsed.
const MAX_HEADERS: usize = 48;

/// Why a request did not get a complete response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The TCP connection could not be opened (refused, unreachable).
    Connect,
    /// The connection was reset or closed before the response was complete.
    Reset,
    /// No complete response within the timeout.
    Timeout,
    /// Anything else: a malformed response, headers too large.
    Other,
}

impl Failure {
    fn from_io(err: &std::io::Error) -> Failure {
        match err.kind() {
            ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::BrokenPipe
            | ErrorKind::UnexpectedEof => Failure::Reset,
            _ => Failure::Other,
        }
    }
}

/// A short header value copied out of the read buffer without allocating (values longer
/// than 63 bytes are truncated; pod and colour names are short).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ShortValue {
    len: u8,
    bytes: [u8; 63],
}

impl ShortValue {
    /// No value.
    pub const EMPTY: ShortValue = ShortValue {
        len: 0,
        bytes: [0; 63],
    };

    /// The first 63 bytes of `value`.
    pub(crate) fn copy(value: &[u8]) -> ShortValue {
        let mut v = ShortValue::EMPTY;
        let n = value.len().min(v.bytes.len());
        v.bytes[..n].copy_from_slice(&value[..n]);
        v.len = n as u8;
        v
    }

    /// The value's bytes (empty when the header was absent).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

impl std::fmt::Debug for ShortValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

/// What the engine keeps of a response.
#[derive(Debug, Clone, Copy)]
pub struct Reply {
    pub status: u16,
    /// `x-resil-color`, empty when absent.
    pub color: ShortValue,
    /// `x-resil-pod`, empty when absent.
    pub pod: ShortValue,
    /// `x-resil-ack` (a write's acknowledgement, `REGION@STORE:SEQ`), empty when absent.
    pub ack: ShortValue,
    /// `x-resil-gateway-region` (the region `resil gateway` sent it to), empty when absent.
    pub region: ShortValue,
    /// Whether the connection may carry the next request.
    pub reusable: bool,
}

/// An open connection, with a read buffer while it holds unconsumed bytes.
pub struct Connection {
    stream: TcpStream,
    /// `None` when `pos == end`: nothing unconsumed, the buffer is back with the spares.
    buf: Option<Box<[u8]>>,
    /// Unconsumed bytes are `buf[pos..end]`.
    pos: usize,
    end: usize,
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(buf) = self.buf.take() {
            give_back(buf);
        }
    }
}

impl Connection {
    /// Opens a connection with Nagle off (requests are single small writes).
    pub async fn open(addr: SocketAddr) -> Result<Connection, Failure> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|_| Failure::Connect)?;
        stream.set_nodelay(true).map_err(|e| Failure::from_io(&e))?;
        Ok(Connection {
            stream,
            buf: None,
            pos: 0,
            end: 0,
        })
    }

    /// Sends `request` and reads the whole response. `head` says the request was a HEAD
    /// (no body follows whatever the headers say).
    pub async fn exchange(&mut self, request: &[u8], head: bool) -> Result<Reply, Failure> {
        self.stream
            .write_all(request)
            .await
            .map_err(|e| Failure::from_io(&e))?;
        loop {
            let (reply, framing) = self.read_head(head).await?;
            // 1xx are interim: the real response follows.
            if (100..200).contains(&reply.status) && reply.status != 101 {
                continue;
            }
            match framing {
                Framing::None => {}
                Framing::Length(n) => self.skip(n).await?,
                Framing::Chunked => self.skip_chunked().await?,
                Framing::UntilClose => {
                    self.skip_to_close().await?;
                    return Ok(Reply {
                        reusable: false,
                        ..reply
                    });
                }
            }
            self.release_if_empty();
            return Ok(reply);
        }
    }

    /// The unconsumed bytes.
    fn data(&self) -> &[u8] {
        match &self.buf {
            Some(buf) => &buf[self.pos..self.end],
            None => &[],
        }
    }

    /// Gives the buffer back when nothing in it is left to parse.
    fn release_if_empty(&mut self) {
        if self.pos == self.end {
            self.pos = 0;
            self.end = 0;
            if let Some(buf) = self.buf.take() {
                give_back(buf);
            }
        }
    }

    /// Reads more bytes into the buffer (compacting it first); EOF is a reset.
    async fn fill(&mut self) -> Result<(), Failure> {
        self.release_if_empty();
        if self.end == BUF_SIZE {
            if self.pos == 0 {
                return Err(Failure::Other); // headers or chunk line larger than the buffer
            }
            if let Some(buf) = &mut self.buf {
                buf.copy_within(self.pos..self.end, 0);
            }
            self.end -= self.pos;
            self.pos = 0;
        }
        match self.read_some().await {
            Ok(0) => Err(Failure::Reset),
            Ok(n) => {
                self.end += n;
                Ok(())
            }
            Err(e) => Err(Failure::from_io(&e)),
        }
    }

    /// Waits until the socket is readable without holding a buffer, then reads into
    /// `buf[end..]` (taking a buffer first if there is none); `Ok(0)` is EOF.
    async fn read_some(&mut self) -> std::io::Result<usize> {
        std::future::poll_fn(|cx| {
            // The reader's own waker slot, as `read` uses (`readable()` would queue a
            // waiter on the socket's list instead, a lock and a list push per wait).
            ready!(self.stream.poll_read_ready(cx))?;
            let buf = self.buf.get_or_insert_with(take_buffer);
            let mut read = ReadBuf::new(&mut buf[self.end..]);
            // `poll_read`, not `try_read`: after a read shorter than the space it drops the
            // socket's readiness (the socket is drained), so the wait for the next reply
            // goes straight to the reactor instead of first making a read that finds
            // nothing — a syscall per request.
            match Pin::new(&mut self.stream).poll_read(cx, &mut read) {
                Poll::Ready(result) => Poll::Ready(result.map(|()| read.filled().len())),
                Poll::Pending => {
                    self.release_if_empty();
                    Poll::Pending
                }
            }
        })
        .await
    }

    async fn read_head(&mut self, head: bool) -> Result<(Reply, Framing), Failure> {
        loop {
            if self.pos < self.end {
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut response = httparse::Response::new(&mut headers);
                match response.parse(self.data()) {
                    Ok(httparse::Status::Complete(len)) => {
                        let parsed = interpret(&response, head);
                        self.pos += len;
                        return Ok(parsed);
                    }
                    Ok(httparse::Status::Partial) => {}
                    Err(_) => return Err(Failure::Other),
                }
            }
            self.fill().await?;
        }
    }

    /// Discards `n` body bytes.
    async fn skip(&mut self, mut n: u64) -> Result<(), Failure> {
        loop {
            let available = (self.end - self.pos) as u64;
            let take = available.min(n);
            self.pos += take as usize;
            n -= take;
            if n == 0 {
                return Ok(());
            }
            self.fill().await?;
        }
    }

    async fn skip_chunked(&mut self) -> Result<(), Failure> {
        loop {
            let size = loop {
                match httparse::parse_chunk_size(self.data()) {
                    Ok(httparse::Status::Complete((len, size))) => {
                        self.pos += len;
                        break size;
                    }
                    Ok(httparse::Status::Partial) => self.fill().await?,
                    Err(_) => return Err(Failure::Other),
                }
            };
            if size == 0 {
                return self.skip_trailers().await;
            }
            // The chunk's data and its closing CRLF.
            self.skip(size + 2).await?;
        }
    }

    /// Trailer lines after the last chunk, up to the empty line.
    async fn skip_trailers(&mut self) -> Result<(), Failure> {
        loop {
            match self.data().windows(2).position(|w| w == b"\r\n") {
                Some(0) => {
                    self.pos += 2;
                    return Ok(());
                }
                Some(i) => self.pos += i + 2,
                None => self.fill().await?,
            }
        }
    }

    async fn skip_to_close(&mut self) -> Result<(), Failure> {
        loop {
            self.pos = self.end;
            self.release_if_empty();
            match self.read_some().await {
                Ok(0) => return Ok(()),
                Ok(n) => self.end += n,
                Err(e) => return Err(Failure::from_io(&e)),
            }
        }
    }
}

enum Framing {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

fn interpret(response: &httparse::Response<'_, '_>, head: bool) -> (Reply, Framing) {
    let status = response.code.unwrap_or(0);
    let mut reply = Reply {
        status,
        color: ShortValue::EMPTY,
        pod: ShortValue::EMPTY,
        ack: ShortValue::EMPTY,
        region: ShortValue::EMPTY,
        // HTTP/1.0 closes unless it says keep-alive.
        reusable: response.version == Some(1),
    };
    let mut length = None;
    let mut chunked = false;
    for h in response.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            length = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok());
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = h
                .value
                .rsplit(|b| *b == b',')
                .next()
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|b| *b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    reply.reusable = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    reply.reusable = true;
                }
            }
        } else if name.eq_ignore_ascii_case(COLOR_HEADER) {
            reply.color = ShortValue::copy(h.value.trim_ascii());
        } else if name.eq_ignore_ascii_case(POD_HEADER) {
            reply.pod = ShortValue::copy(h.value.trim_ascii());
        } else if name.eq_ignore_ascii_case(ACK_HEADER) {
            reply.ack = ShortValue::copy(h.value.trim_ascii());
        } else if name.eq_ignore_ascii_case(REGION_HEADER) {
            reply.region = ShortValue::copy(h.value.trim_ascii());
        }
    }
    let framing = if head || status == 204 || status == 304 || (100..200).contains(&status) {
        Framing::None
    } else if chunked {
        Framing::Chunked
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        Framing::UntilClose
    };
    (reply, framing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    /// A server that answers every request on one connection with the next canned reply.
    async fn canned(replies: Vec<&'static [u8]>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            for reply in replies {
                let _ = s.read(&mut buf).await.unwrap();
                // Split the reply to exercise partial reads.
                let mid = reply.len() / 2;
                s.write_all(&reply[..mid]).await.unwrap();
                s.flush().await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                s.write_all(&reply[mid..]).await.unwrap();
            }
        });
        addr
    }

    #[tokio::test]
    async fn lengths_chunks_and_attribution_headers_are_read_on_one_connection() {
        let addr = canned(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Resil-Color: blue\r\nx-resil-pod: web-blue-1\r\n\r\nhello",
            b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nX-T: 1\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
        ])
        .await;
        let mut conn = Connection::open(addr).await.unwrap();
        let req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        let r = conn.exchange(req, false).await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.color.as_bytes(), b"blue");
        assert_eq!(r.pod.as_bytes(), b"web-blue-1");
        assert!(r.reusable);
        let r = conn.exchange(req, false).await.unwrap();
        assert_eq!(r.status, 503);
        assert_eq!(r.color.as_bytes(), b"");
        let r = conn.exchange(req, false).await.unwrap();
        assert_eq!(r.status, 204);
        let r = conn.exchange(req, false).await.unwrap();
        assert_eq!(r.status, 200);
        assert!(!r.reusable);
        assert_eq!(conn.exchange(req, false).await.unwrap_err(), Failure::Reset);
    }

    #[tokio::test]
    async fn connections_waiting_for_a_response_hold_no_read_buffer() {
        const CONNS: usize = 32;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Answers only once every connection has sent its request, so all of them wait
        // at once.
        tokio::spawn(async move {
            let mut streams = Vec::new();
            for _ in 0..CONNS {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await.unwrap();
                streams.push(s);
            }
            for s in &mut streams {
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await
                    .unwrap();
            }
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        });
        SPARES.with_borrow_mut(Vec::clear);
        let mut conns = Vec::new();
        for _ in 0..CONNS {
            conns.push(Connection::open(addr).await.unwrap());
        }
        let req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        let replies =
            futures::future::join_all(conns.iter_mut().map(|c| c.exchange(req, false))).await;
        assert!(replies.iter().all(|r| r.as_ref().unwrap().status == 200));
        assert!(conns.iter().all(|c| c.buf.is_none()));
        drop(conns);
        // One buffer served every read in turn; a buffer per connection would leave 32.
        assert_eq!(SPARES.with_borrow(Vec::len), 1);
    }

    #[tokio::test]
    async fn bytes_left_after_an_interim_response_stay_in_the_buffer() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await.unwrap();
            // The interim and the final response in one write: the final one is already
            // in the buffer when the interim one has been parsed.
            s.write_all(
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nnew",
            )
            .await
            .unwrap();
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        });
        let mut conn = Connection::open(addr).await.unwrap();
        let r = conn
            .exchange(b"POST / HTTP/1.1\r\nHost: x\r\n\r\n", false)
            .await
            .unwrap();
        assert_eq!(r.status, 201);
        assert!(r.reusable);
        assert!(conn.buf.is_none());
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_connect_failure() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        assert_eq!(Connection::open(addr).await.err(), Some(Failure::Connect));
    }
}
