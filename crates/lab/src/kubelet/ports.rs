//! Ports for pod processes on their node's loopback address (`127.0.(i-1).1`, or
//! 127.0.0.1 where the OS has only that). Pods of a node share its address, so each
//! container instance gets its own port: the kubelet asks the OS for a free one (bind
//! port 0, read it, release it) and passes it as `--port`.
//!
//! The small race: between releasing the port and the child binding it, another process
//! may take it. The child then fails to bind and exits with code 2 ("binding ...:
//! Address in use" in its log); the kubelet treats that exactly as a container crash —
//! the restart (under the usual back-off) gets a fresh port. The lab's own NodePort
//! range is skipped so a pod never takes a Service's port.

use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::ops::RangeInclusive;

/// The NodePort range, which pod ports must stay out of.
pub const NODE_PORTS: RangeInclusive<u16> = 30000..=32767;

/// How many OS-chosen ports to try before giving up (the OS hands out ports from its
/// ephemeral range, which on Linux and macOS lies outside the NodePort range anyway).
const ATTEMPTS: usize = 32;

/// A port on `ip` that was free a moment ago, outside the NodePort range.
pub fn free_port(ip: Ipv4Addr) -> io::Result<u16> {
    for _ in 0..ATTEMPTS {
        let listener = TcpListener::bind((ip, 0))?;
        let port = listener.local_addr()?.port();
        if !NODE_PORTS.contains(&port) {
            return Ok(port);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrNotAvailable,
        "the OS kept offering ports in the NodePort range 30000-32767",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_free_port_can_be_bound_and_is_not_a_node_port() {
        let port = free_port(Ipv4Addr::LOCALHOST).unwrap();
        assert!(!NODE_PORTS.contains(&port));
        TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("the port should be free");
    }
}
