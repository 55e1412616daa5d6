//! The HTTP listener's defences: slow, idle and too many clients cannot hold descriptors.
//!
//! poem hands connections to hyper without a timer, so hyper applies no header-read timeout,
//! and poem's own idle timeout shuts connections down gracefully, which waits for a request
//! whose headers or body never arrive. Both gaps are closed here, below hyper, on the socket:
//!
//! 1. [`GuardedAcceptor`] counts open connections. Past `HTTP_MAX_CONNECTIONS` a connection is
//!    answered `503` with `Retry-After` and closed at once, so the process never reaches its
//!    descriptor limit and the connections it holds keep being served. An accept error (the
//!    limit reached anyway) pauses accepting briefly instead of spinning.
//! 2. [`GuardedIo`] wraps each socket and fails its reads and writes (which makes hyper drop
//!    the connection) when a deadline passes:
//!    - the headers of a request must be complete within `HTTP_HEADER_TIMEOUT_SECS` of its
//!      first byte (of the connection's opening, for the first request): slowloris;
//!    - a kept-alive connection may wait `HTTP_KEEP_ALIVE_SECS` for its next request;
//!    - while a request or its response is in flight, bytes must move at least every
//!      `HTTP_IDLE_TIMEOUT_SECS`: a body shorter than its `Content-Length`, or a client that
//!      stops reading, is cut; a slow upload that keeps moving is not.
//!
//! Header ends are found by watching the bytes read for the blank line; a response (a write
//! that starts a status line other than `1xx`) marks the start of the next request. HTTP/2
//! (prior knowledge) has its own framing: only the idle rule applies to it.

use std::{
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use poem::{
    http::uri::Scheme,
    listener::Acceptor,
    web::{LocalAddr, RemoteAddr},
};
use tend_shared::config::HttpLimits;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf},
    sync::{OwnedSemaphorePermit, Semaphore},
    time::{Instant, Sleep},
};

/// Descriptors kept back from the connection cap for the database, the store and logs.
const RESERVED_DESCRIPTORS: u64 = 256;

/// Raises this process's open-file limit to its hard limit where the OS allows, and returns
/// the connection cap that fits under it (`HTTP_MAX_CONNECTIONS` or less).
pub fn connection_cap(limits: &HttpLimits) -> usize {
    let descriptors = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(err) => {
            tracing::warn!(error = %err, "cannot read or raise the open-file limit");
            return limits.max_connections;
        }
    };
    let fits = descriptors.saturating_sub(RESERVED_DESCRIPTORS).max(16);
    let cap = limits.max_connections.min(fits as usize);
    if cap < limits.max_connections {
        tracing::warn!(
            descriptors,
            cap,
            "the open-file limit is lower than HTTP_MAX_CONNECTIONS allows; connections are capped lower"
        );
    }
    cap
}

/// An acceptor that caps open connections and puts every socket under [`GuardedIo`].
pub struct GuardedAcceptor<A> {
    inner: A,
    slots: Arc<Semaphore>,
    limits: HttpLimits,
}

impl<A> GuardedAcceptor<A> {
    /// Wraps `inner`, allowing `cap` connections at once.
    pub fn new(inner: A, limits: HttpLimits, cap: usize) -> Self {
        Self {
            inner,
            slots: Arc::new(Semaphore::new(cap)),
            limits,
        }
    }
}

impl<A: Acceptor> Acceptor for GuardedAcceptor<A> {
    type Io = GuardedIo<A::Io>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(&mut self) -> io::Result<(Self::Io, LocalAddr, RemoteAddr, Scheme)> {
        loop {
            match self.inner.accept().await {
                Ok((io, local, remote, scheme)) => match self.slots.clone().try_acquire_owned() {
                    Ok(permit) => {
                        return Ok((
                            GuardedIo::new(io, permit, self.limits),
                            local,
                            remote,
                            scheme,
                        ));
                    }
                    Err(_) => {
                        tokio::spawn(refuse(io));
                    }
                },
                Err(err) => {
                    // EMFILE and friends: the next accept would fail the same way at once.
                    tracing::warn!(error = %err, "cannot accept a connection; pausing accepts");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

/// The answer to a connection past the cap: a complete HTTP/1.1 response, then close.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/problem+json\r\n\
retry-after: 1\r\n\
connection: close\r\n\
content-length: 155\r\n\r\n\
{\"type\":\"/problems/too-many-connections\",\"title\":\"Too many connections\",\"status\":503,\
\"detail\":\"The server holds its maximum of open connections.\"}";

/// Writes [`REFUSAL`] and closes, spending at most half a second on the client.
async fn refuse<Io: AsyncRead + AsyncWrite + Unpin>(mut io: Io) {
    let answer = async {
        io.write_all(REFUSAL).await?;
        io.shutdown().await?;
        // Read what the client sent, so closing does not reset the connection before the
        // client has read the answer.
        let mut sink = [0u8; 4096];
        while io.read(&mut sink).await? > 0 {}
        Ok::<_, io::Error>(())
    };
    let _ = tokio::time::timeout(Duration::from_millis(500), answer).await;
}

/// Where a connection is in its request cycle, for the header deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading a request's headers, which must end by this instant.
    Headers { deadline: Instant },
    /// Headers read: the body and the response are in flight.
    InFlight,
    /// A response was written: waiting for the next request, until this instant.
    KeptAlive { deadline: Instant },
    /// HTTP/2: no header rule.
    Http2,
}

/// A socket with deadlines (see the module docs). Holds its connection slot until dropped.
pub struct GuardedIo<T> {
    inner: T,
    _slot: OwnedSemaphorePermit,
    limits: HttpLimits,
    phase: Phase,
    /// The last three bytes read, so a blank line split across reads is found.
    tail: [u8; 3],
    /// When bytes last moved either way.
    last_activity: Instant,
    /// Whether the first bytes were read (to tell HTTP/2's preface).
    started: bool,
    timer: Pin<Box<Sleep>>,
}

impl<T> GuardedIo<T> {
    fn new(inner: T, slot: OwnedSemaphorePermit, limits: HttpLimits) -> Self {
        let now = Instant::now();
        let deadline = now + limits.header_timeout;
        Self {
            inner,
            _slot: slot,
            limits,
            phase: Phase::Headers { deadline },
            tail: [0; 3],
            last_activity: now,
            started: false,
            timer: Box::pin(tokio::time::sleep_until(deadline)),
        }
    }

    /// The instant at which waiting for the peer stops. A write waits for the peer to read,
    /// which the idle rule bounds whatever the phase (a long download to a slow client).
    fn deadline(&self, writing: bool) -> Instant {
        if writing {
            return self.last_activity + self.limits.idle_timeout;
        }
        match self.phase {
            Phase::Headers { deadline } => {
                deadline.min(self.last_activity + self.limits.idle_timeout)
            }
            Phase::KeptAlive { deadline } => deadline,
            Phase::InFlight | Phase::Http2 => self.last_activity + self.limits.idle_timeout,
        }
    }

    /// Notes bytes read: activity, the HTTP/2 preface, the end of a request's headers.
    fn on_read(&mut self, bytes: &[u8]) {
        let now = Instant::now();
        self.last_activity = now;
        if !self.started {
            self.started = true;
            if bytes.starts_with(b"PRI * HTTP/2") {
                self.phase = Phase::Http2;
                return;
            }
        }
        if let Phase::KeptAlive { .. } = self.phase {
            self.phase = Phase::Headers {
                deadline: now + self.limits.header_timeout,
            };
        }
        if let Phase::Headers { .. } = self.phase {
            // A blank line across the previous read's tail and this read's head, or inside
            // this read: no copy of the bytes.
            let head = &bytes[..bytes.len().min(3)];
            let mut seam = [0u8; 6];
            seam[..3].copy_from_slice(&self.tail);
            seam[3..3 + head.len()].copy_from_slice(head);
            let across = seam[..3 + head.len()].windows(4).any(|w| w == b"\r\n\r\n");
            if across || bytes.windows(4).any(|w| w == b"\r\n\r\n") {
                self.phase = Phase::InFlight;
            }
        }
        let keep = bytes.len().min(3);
        self.tail.rotate_left(keep);
        self.tail[3 - keep..].copy_from_slice(&bytes[bytes.len() - keep..]);
    }

    /// Notes bytes written: activity, and a final response's start.
    fn on_write(&mut self, bytes: &[u8]) {
        let now = Instant::now();
        self.last_activity = now;
        let final_response = bytes.starts_with(b"HTTP/1.") && bytes.get(9) != Some(&b'1');
        // The wait for the next request starts after the response's last byte.
        let responding = matches!(self.phase, Phase::KeptAlive { .. });
        if (final_response && self.phase == Phase::InFlight) || responding {
            self.phase = Phase::KeptAlive {
                deadline: now + self.limits.keep_alive,
            };
        }
    }

    /// Called when the peer is not ready: fails once the deadline has passed.
    fn check_deadline(&mut self, cx: &mut Context<'_>, writing: bool) -> Poll<io::Error> {
        let deadline = self.deadline(writing);
        if self.timer.deadline() != deadline {
            self.timer.as_mut().reset(deadline);
        }
        match self.timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                let what = match self.phase {
                    Phase::Headers { .. } => "request headers not received in time",
                    Phase::KeptAlive { .. } => "kept-alive connection idle",
                    Phase::InFlight | Phase::Http2 => "connection idle mid-request",
                };
                tracing::debug!(what, "closing a connection");
                Poll::Ready(io::Error::new(io::ErrorKind::TimedOut, what))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for GuardedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let filled = buf.filled();
                if filled.len() > before {
                    this.on_read(&filled[before..]);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Pending => this.check_deadline(cx, false).map(Err),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for GuardedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    this.on_write(&buf[..n]);
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Pending => this.check_deadline(cx, true).map(Err),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Pending => this.check_deadline(cx, true).map(Err),
            ready => ready,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io() -> GuardedIo<()> {
        let slot = Arc::new(Semaphore::new(1)).try_acquire_owned().unwrap();
        let limits = HttpLimits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            keep_alive: Duration::from_secs(15),
            max_connections: 1,
        };
        GuardedIo::new((), slot, limits)
    }

    #[tokio::test]
    async fn a_blank_line_split_across_reads_ends_the_headers() {
        let mut io = io();
        io.on_read(b"GET / HTTP/1.1\r\nHost: x\r\n\r");
        assert!(matches!(io.phase, Phase::Headers { .. }));
        io.on_read(b"\n");
        assert_eq!(io.phase, Phase::InFlight);
    }

    #[tokio::test]
    async fn a_final_response_waits_for_the_next_request_but_100_continue_does_not() {
        let mut io = io();
        io.on_read(b"POST / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n");
        io.on_write(b"HTTP/1.1 100 Continue\r\n\r\n");
        assert_eq!(io.phase, Phase::InFlight);
        io.on_read(b"body bytes without a blank line");
        assert_eq!(io.phase, Phase::InFlight);
        io.on_write(b"HTTP/1.1 201 Created\r\n");
        assert!(matches!(io.phase, Phase::KeptAlive { .. }));
        io.on_read(b"GET");
        assert!(matches!(io.phase, Phase::Headers { .. }));
    }

    #[tokio::test]
    async fn a_long_response_keeps_the_keep_alive_wait_from_starting_and_writes_wait_idle() {
        let mut io = io();
        io.on_read(b"GET /export HTTP/1.1\r\n\r\n");
        io.on_write(b"HTTP/1.1 200 OK\r\n\r\n");
        let Phase::KeptAlive { deadline: first } = io.phase else {
            panic!("waiting for the next request");
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
        io.on_write(b"more of the body");
        let Phase::KeptAlive { deadline: later } = io.phase else {
            panic!("still after the response");
        };
        assert!(
            later > first,
            "the wait restarts after each byte of the response"
        );
        assert_eq!(
            io.deadline(true),
            io.last_activity + Duration::from_secs(60)
        );
    }

    #[tokio::test]
    async fn http2_has_no_header_rule() {
        let mut io = io();
        io.on_read(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        assert_eq!(io.phase, Phase::Http2);
    }
}
