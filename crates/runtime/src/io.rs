//! Guest standard streams: a bounded stdout that becomes the response body,
//! and a stderr that becomes the function's log, line by line.

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

/// A stdout that keeps at most `limit` bytes. A write past the limit traps the
/// guest at once (so a guest writing gigabytes stops at the limit, not when it
/// is done) and marks the stream as overflowed.
#[derive(Clone)]
pub(crate) struct CappedOutput {
    inner: Arc<CappedInner>,
}

struct CappedInner {
    limit: usize,
    buf: Mutex<BytesMut>,
    overflowed: AtomicBool,
}

impl CappedOutput {
    pub(crate) fn new(limit: u64) -> Self {
        CappedOutput {
            inner: Arc::new(CappedInner {
                limit: usize::try_from(limit).unwrap_or(usize::MAX),
                buf: Mutex::new(BytesMut::new()),
                overflowed: AtomicBool::new(false),
            }),
        }
    }

    pub(crate) fn overflowed(&self) -> bool {
        self.inner.overflowed.load(Ordering::Relaxed)
    }

    pub(crate) fn take(&self) -> Bytes {
        std::mem::take(&mut *self.inner.buf.lock()).freeze()
    }

    /// Appends `bytes`, or refuses the whole write if it would pass the limit.
    fn append(&self, bytes: &[u8]) -> Result<(), ()> {
        let mut buf = self.inner.buf.lock();
        if bytes.len() > self.inner.limit.saturating_sub(buf.len()) {
            self.inner.overflowed.store(true, Ordering::Relaxed);
            return Err(());
        }
        buf.extend_from_slice(bytes);
        Ok(())
    }
}

impl Sink for CappedOutput {
    fn accept(&self, bytes: &[u8]) -> Result<(), String> {
        self.append(bytes).map_err(|()| {
            format!(
                "response body exceeds the limit of {} bytes",
                self.inner.limit
            )
        })
    }
}

/// Receives each line a guest writes to stderr.
pub type LogFn = Arc<dyn Fn(String) + Send + Sync>;

/// A stderr that splits what the guest writes into lines and hands each to a
/// [`LogFn`]. At most `limit` bytes are logged per invocation; the rest is
/// dropped and one marker line says so.
#[derive(Clone)]
pub(crate) struct LogSink {
    inner: Arc<LogInner>,
}

struct LogInner {
    limit: usize,
    emit: LogFn,
    state: Mutex<LogState>,
}

#[derive(Default)]
struct LogState {
    partial: Vec<u8>,
    logged: usize,
    truncated: bool,
}

/// Longest line kept whole; longer lines are split.
const MAX_LINE: usize = 8 * 1024;

impl LogSink {
    pub(crate) fn new(limit: usize, emit: LogFn) -> Self {
        LogSink {
            inner: Arc::new(LogInner {
                limit,
                emit,
                state: Mutex::new(LogState::default()),
            }),
        }
    }

    fn push(&self, bytes: &[u8]) {
        let mut st = self.inner.state.lock();
        if st.truncated {
            return;
        }
        let room = self.inner.limit.saturating_sub(st.logged);
        let take = bytes.len().min(room);
        st.logged += take;
        for &b in &bytes[..take] {
            if b == b'\n' {
                let line = std::mem::take(&mut st.partial);
                (self.inner.emit)(String::from_utf8_lossy(&line).into_owned());
            } else {
                st.partial.push(b);
                if st.partial.len() >= MAX_LINE {
                    let line = std::mem::take(&mut st.partial);
                    (self.inner.emit)(String::from_utf8_lossy(&line).into_owned());
                }
            }
        }
        if take < bytes.len() {
            st.truncated = true;
            let line = std::mem::take(&mut st.partial);
            if !line.is_empty() {
                (self.inner.emit)(String::from_utf8_lossy(&line).into_owned());
            }
            (self.inner.emit)(format!(
                "[weft: log truncated at {} bytes for this invocation]",
                self.inner.limit
            ));
        }
    }

    /// Emits a last line that had no trailing newline.
    pub(crate) fn finish(&self) {
        let mut st = self.inner.state.lock();
        let line = std::mem::take(&mut st.partial);
        if !line.is_empty() {
            (self.inner.emit)(String::from_utf8_lossy(&line).into_owned());
        }
    }
}

impl Sink for LogSink {
    fn accept(&self, bytes: &[u8]) -> Result<(), String> {
        self.push(bytes);
        Ok(())
    }
}

/// Where the bytes of a guest's output stream go.
pub(crate) trait Sink: Clone + Send + Sync + 'static {
    /// Takes `bytes`, or refuses them; a refusal traps the guest with the
    /// message.
    fn accept(&self, bytes: &[u8]) -> Result<(), String>;
}

/// A guest output stream (stdout or stderr, WASI p1 or p2) feeding a
/// [`Sink`].
#[derive(Clone)]
pub(crate) struct GuestStream<S>(pub(crate) S);

impl<S: Sink> IsTerminal for GuestStream<S> {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl<S: Sink> StdoutStream for GuestStream<S> {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl<S: Sink> Pollable for GuestStream<S> {
    async fn ready(&mut self) {}
}

#[async_trait::async_trait]
impl<S: Sink> OutputStream for GuestStream<S> {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.0.accept(&bytes).map_err(|m| StreamError::trap(&m))
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        // Always offer room for a chunk: for a bounded sink, a write that
        // does not fit is what tells us the guest overran its limit.
        Ok(64 * 1024)
    }
}

impl<S: Sink> AsyncWrite for GuestStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(
            self.0
                .accept(buf)
                .map(|()| buf.len())
                .map_err(std::io::Error::other),
        )
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_output_refuses_past_limit() {
        let out = CappedOutput::new(4);
        assert!(out.append(b"abc").is_ok());
        assert!(out.append(b"de").is_err());
        assert!(out.overflowed());
        assert_eq!(&out.take()[..], b"abc");
    }

    #[test]
    fn log_sink_splits_lines_and_truncates() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let l2 = lines.clone();
        let sink = LogSink::new(12, Arc::new(move |s| l2.lock().push(s)));
        sink.push(b"one\ntw");
        sink.push(b"o\nthree\nfour\n");
        sink.finish();
        let got = lines.lock().clone();
        assert_eq!(got[0], "one");
        assert_eq!(got[1], "two");
        assert_eq!(got[2], "thre");
        assert!(got[3].contains("log truncated at 12 bytes"));
        assert_eq!(got.len(), 4);
    }
}
