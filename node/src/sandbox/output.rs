//! Guest stdout/stderr: streamed to an [`OutputSink`] as the guest writes, capped per call.
//!
//! Nothing is buffered here: each WASI write is handed to the sink before `fd_write`
//! returns to the guest, so the caller sees output while the guest runs (RPyC's
//! `redirected_stdio`) and a guest flooding its stdout costs the node no memory. Past the
//! per-call cap the sink gets one marker line and the rest is counted and dropped.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Which guest stream some output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    /// The guest's stdout (WASI fd 1).
    Stdout,
    /// The guest's stderr (WASI fd 2).
    Stderr,
}

/// Where guest output goes: a callback invoked with each chunk as the guest writes it.
///
/// The callback runs on the thread executing the guest, inside its `fd_write`, so it
/// should be quick (push to a channel, not block on a socket).
#[derive(Clone)]
pub struct OutputSink(Arc<SinkFn>);

type SinkFn = dyn Fn(Stream, &[u8]) + Send + Sync;

impl OutputSink {
    /// A sink calling `f` with every chunk of guest output.
    pub fn new(f: impl Fn(Stream, &[u8]) + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    fn deliver(&self, stream: Stream, bytes: &[u8]) {
        (self.0)(stream, bytes);
    }
}

impl fmt::Debug for OutputSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OutputSink(..)")
    }
}

/// The output side of one instance: its sink, its per-call cap and what the current call
/// has written so far. Cloning gives another handle on the same state.
#[derive(Clone)]
pub struct OutputCapture {
    state: Arc<Mutex<CaptureState>>,
}

#[derive(Debug)]
struct CaptureState {
    sink: Option<OutputSink>,
    max_output: u64,
    /// Bytes the guest wrote during the current call, delivered or not.
    written: u64,
    truncated: bool,
}

impl OutputCapture {
    /// A capture delivering to `sink` (or discarding, if `None`), with at most
    /// `max_output` bytes delivered per call.
    pub fn new(sink: Option<OutputSink>, max_output: u64) -> Self {
        Self {
            state: Arc::new(Mutex::new(CaptureState {
                sink,
                max_output,
                written: 0,
                truncated: false,
            })),
        }
    }

    /// Starts a new call: the cap applies afresh.
    pub fn reset(&self) {
        let mut state = self.lock();
        state.written = 0;
        state.truncated = false;
    }

    /// Replaces the sink, e.g. to stream each call's output to that call's caller.
    pub fn set_sink(&self, sink: Option<OutputSink>) {
        self.lock().sink = sink;
    }

    /// Bytes the guest wrote since the last [`reset`](Self::reset), including any that
    /// were dropped over the cap.
    pub fn written(&self) -> u64 {
        self.lock().written
    }

    /// Whether output has been cut off since the last [`reset`](Self::reset).
    pub fn truncated(&self) -> bool {
        self.lock().truncated
    }

    /// A WASI stdout/stderr implementation writing into this capture.
    pub(crate) fn stream(&self, stream: Stream) -> CaptureStream {
        CaptureStream {
            capture: self.clone(),
            stream,
        }
    }

    fn write(&self, stream: Stream, bytes: &[u8]) {
        // Decide under the lock, deliver outside it: the sink is caller code and may be
        // slow or take locks of its own.
        let (sink, deliver, marker) = {
            let mut state = self.lock();
            let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
            let before = state.written;
            state.written = before.saturating_add(len);
            if state.truncated {
                return;
            }
            let room = state.max_output.saturating_sub(before);
            if len <= room {
                (state.sink.clone(), bytes, None)
            } else {
                state.truncated = true;
                // `room < len <= usize::MAX`, so this conversion cannot fail.
                let keep = usize::try_from(room).unwrap_or(bytes.len());
                let marker = format!(
                    "\n[rwc: output truncated after {} bytes]\n",
                    state.max_output
                );
                (state.sink.clone(), &bytes[..keep], Some(marker))
            }
        };
        if let Some(sink) = sink {
            if !deliver.is_empty() {
                sink.deliver(stream, deliver);
            }
            if let Some(marker) = marker {
                sink.deliver(stream, marker.as_bytes());
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, CaptureState> {
        // The state stays consistent even if a holder panicked (no sink runs under the
        // lock), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for OutputCapture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("OutputCapture").field(&*self.lock()).finish()
    }
}

/// One guest stream (stdout or stderr) of an [`OutputCapture`], in the shapes WASI wants:
/// a [`StdoutStream`] factory, a p2 [`OutputStream`] (what preview 1 `fd_write` uses) and
/// a tokio [`AsyncWrite`].
#[derive(Debug, Clone)]
pub(crate) struct CaptureStream {
    capture: OutputCapture,
    stream: Stream,
}

/// How much a guest may write per `check_write` permit. Writes are never refused, so
/// this only bounds the chunks WASI hands us.
const WRITE_PERMIT: usize = 64 * 1024;

impl IsTerminal for CaptureStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CaptureStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CaptureStream {
    async fn ready(&mut self) {
        // Always writable: output is delivered synchronously or dropped.
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for CaptureStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.capture.write(self.stream, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

impl AsyncWrite for CaptureStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.capture.write(self.stream, buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Recorded = Arc<Mutex<Vec<(Stream, Vec<u8>)>>>;

    /// A capture of at most `cap` bytes into a sink recording everything it is given:
    /// the capture and what the sink saw.
    fn recording_capture(cap: u64) -> (OutputCapture, Recorded) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink_seen = Arc::clone(&seen);
        let sink = OutputSink::new(move |stream, bytes| {
            sink_seen.lock().unwrap().push((stream, bytes.to_vec()));
        });
        (OutputCapture::new(Some(sink), cap), seen)
    }

    #[test]
    fn delivers_each_write_as_it_happens() {
        let (capture, seen) = recording_capture(100);
        let mut out = capture.stream(Stream::Stdout);
        let mut err = capture.stream(Stream::Stderr);
        out.write(Bytes::from_static(b"hello ")).unwrap();
        assert_eq!(
            seen.lock().unwrap().len(),
            1,
            "delivered before the next write"
        );
        err.write(Bytes::from_static(b"oops")).unwrap();
        out.write(Bytes::from_static(b"world")).unwrap();
        assert_eq!(
            *seen.lock().unwrap(),
            vec![
                (Stream::Stdout, b"hello ".to_vec()),
                (Stream::Stderr, b"oops".to_vec()),
                (Stream::Stdout, b"world".to_vec()),
            ]
        );
        assert_eq!(capture.written(), 15);
        assert!(!capture.truncated());
    }

    #[test]
    fn cap_delivers_a_prefix_then_one_marker_then_nothing() {
        let (capture, seen) = recording_capture(10);
        let mut out = capture.stream(Stream::Stdout);
        out.write(Bytes::from_static(b"12345678")).unwrap();
        out.write(Bytes::from_static(b"abcdef")).unwrap();
        out.write(Bytes::from_static(b"more")).unwrap();
        let seen = seen.lock().unwrap().clone();
        let delivered: Vec<u8> = seen.iter().flat_map(|(_, b)| b.clone()).collect();
        assert_eq!(
            String::from_utf8(delivered).unwrap(),
            "12345678ab\n[rwc: output truncated after 10 bytes]\n"
        );
        assert_eq!(capture.written(), 18);
        assert!(capture.truncated());
    }

    #[test]
    fn reset_starts_a_fresh_budget() {
        let (capture, seen) = recording_capture(4);
        let mut out = capture.stream(Stream::Stdout);
        out.write(Bytes::from_static(b"123456")).unwrap();
        capture.reset();
        assert_eq!(capture.written(), 0);
        out.write(Bytes::from_static(b"ok")).unwrap();
        let seen = seen.lock().unwrap();
        assert_eq!(seen.last().unwrap(), &(Stream::Stdout, b"ok".to_vec()));
    }

    #[test]
    fn without_a_sink_output_is_counted_and_dropped() {
        let capture = OutputCapture::new(None, 4);
        let mut out = capture.stream(Stream::Stderr);
        out.write(Bytes::from_static(b"123456")).unwrap();
        assert_eq!(capture.written(), 6);
        assert!(capture.truncated());
    }
}
