//! Length-prefixed frames: a little-endian `u32` payload length, then the payload.
//!
//! The reader never trusts a length: it refuses one over the limit before reading, and
//! grows its buffer as bytes actually arrive, so a peer that announces a large frame and
//! sends nothing costs nothing.

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::error::Error;

/// Bytes of the length prefix.
pub const PREFIX_LEN: usize = 4;

/// Starts a frame in `buf`: reserves the length prefix. Encode the payload after it, then
/// call [`finish_frame`].
pub fn begin_frame(buf: &mut Vec<u8>) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&[0; PREFIX_LEN]);
    start
}

/// Writes the length prefix of the frame begun at `start`; fails if the payload is over
/// `max_frame` bytes.
pub fn finish_frame(buf: &mut [u8], start: usize, max_frame: usize) -> Result<(), Error> {
    let len = buf.len() - start - PREFIX_LEN;
    buf[start..start + PREFIX_LEN].copy_from_slice(&prefix(len, max_frame)?);
    Ok(())
}

/// The length prefix of a frame whose payload is `len` bytes; fails if that is over
/// `max_frame` bytes.
pub fn prefix(len: usize, max_frame: usize) -> Result<[u8; PREFIX_LEN], Error> {
    let too_big = || {
        Error::bad_argument(format!(
            "message of {len} bytes exceeds the frame limit of {max_frame} bytes; send less at once"
        ))
    };
    if len > max_frame {
        return Err(too_big());
    }
    let len32 = u32::try_from(len).map_err(|_| too_big())?;
    Ok(len32.to_le_bytes())
}

/// Encodes one whole frame around `payload`.
pub fn frame(payload: &[u8], max_frame: usize) -> Result<Vec<u8>, Error> {
    let mut buf = Vec::with_capacity(PREFIX_LEN + payload.len());
    let start = begin_frame(&mut buf);
    buf.extend_from_slice(payload);
    finish_frame(&mut buf, start, max_frame)?;
    Ok(buf)
}

/// Reads one frame's payload. `Ok(None)` is a clean end of stream between frames; a frame
/// over `max_frame` bytes is a protocol error, refused before any of it is read.
///
/// # Cancel safety
/// Not cancel safe: dropping the future part-way through a frame loses the bytes read so
/// far, and the stream no longer starts at a frame boundary. Drop it only to abandon the
/// stream (a connection's reader does so only when it closes).
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max_frame: usize,
) -> Result<Option<Vec<u8>>, Error> {
    let Some(len) = read_prefix(r).await? else {
        return Ok(None);
    };
    if len > max_frame {
        return Err(oversize(len, max_frame));
    }
    read_payload(r, len).await.map(Some)
}

/// What a connection's reader takes from the stream.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// A whole frame's payload.
    Frame(Vec<u8>),
    /// A frame over the limit: its first `head.len()` bytes (at most the `head_len` asked
    /// for) have been read and the rest has not. The caller reads past it with [`skip`] if
    /// the head tells it what to answer, or gives up on the stream.
    Oversize {
        /// The first bytes of the payload.
        head: Vec<u8>,
        /// The whole payload's length.
        len: usize,
    },
}

/// Reads one frame, or the head of one over `max_frame`. `Ok(None)` is a clean end of
/// stream between frames.
///
/// # Cancel safety
/// Not cancel safe, like [`read_frame`].
pub(crate) async fn read_incoming<R: AsyncRead + Unpin>(
    r: &mut R,
    max_frame: usize,
    head_len: usize,
) -> Result<Option<Incoming>, Error> {
    let Some(len) = read_prefix(r).await? else {
        return Ok(None);
    };
    if len <= max_frame {
        return read_payload(r, len).await.map(|p| Some(Incoming::Frame(p)));
    }
    let head = read_payload(r, len.min(head_len)).await?;
    Ok(Some(Incoming::Oversize { head, len }))
}

/// Reads and discards `n` bytes: the rest of a frame over the limit. Costs no memory.
///
/// # Cancel safety
/// Not cancel safe, like [`read_frame`].
pub(crate) async fn skip<R: AsyncRead + Unpin>(r: &mut R, n: usize) -> Result<(), Error> {
    let n64 = u64::try_from(n).map_err(|_| Error::protocol("frame length does not fit"))?;
    let skipped = tokio::io::copy(&mut r.take(n64), &mut tokio::io::sink())
        .await
        .map_err(read_failed)?;
    if skipped != n64 {
        return Err(Error::protocol(format!(
            "truncated frame: stream ended {} bytes before the end of a frame",
            n64 - skipped
        )));
    }
    Ok(())
}

/// The error for a frame of `len` bytes over `max_frame`.
pub(crate) fn oversize(len: usize, max_frame: usize) -> Error {
    Error::protocol(format!(
        "frame of {len} bytes exceeds the limit of {max_frame} bytes"
    ))
}

/// Reads a length prefix; `None` at a clean end of stream.
async fn read_prefix<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<usize>, Error> {
    let mut prefix = [0u8; PREFIX_LEN];
    let mut got = 0;
    while got < PREFIX_LEN {
        let n = r.read(&mut prefix[got..]).await.map_err(read_failed)?;
        if n == 0 {
            return if got == 0 {
                Ok(None)
            } else {
                Err(Error::protocol(
                    "truncated frame: stream ended inside a length prefix",
                ))
            };
        }
        got += n;
    }
    usize::try_from(u32::from_le_bytes(prefix))
        .map(Some)
        .map_err(|_| Error::protocol("frame length does not fit this platform"))
}

/// Bytes of a frame read before the rest of its announced length is allocated: a peer
/// that announces a large frame and sends nothing costs no more than this.
const FIRST_READ: usize = 1 << 20;

/// Reads exactly `len` bytes into a buffer of exactly `len` bytes. Up to [`FIRST_READ`]
/// is allocated at once; the rest of the announced length (already checked against the
/// frame limit) once that much has arrived: one reallocation at most, never a buffer
/// that doubles its way up, and the reads go straight into it.
async fn read_payload<R: AsyncRead + Unpin>(r: &mut R, len: usize) -> Result<Vec<u8>, Error> {
    let mut payload = Vec::with_capacity(len.min(FIRST_READ));
    while payload.len() < len {
        if payload.len() == payload.capacity() {
            payload.reserve_exact(len - payload.len());
        }
        let room = payload.capacity().min(len) - payload.len();
        let n = (&mut *r)
            .take(u64::try_from(room).unwrap_or(u64::MAX))
            .read_buf(&mut payload)
            .await
            .map_err(read_failed)?;
        if n == 0 {
            return Err(Error::protocol(format!(
                "truncated frame: stream ended after {} of {len} bytes",
                payload.len()
            )));
        }
    }
    Ok(payload)
}

fn read_failed(e: std::io::Error) -> Error {
    Error::disconnected(format!("read failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[tokio::test]
    async fn round_trip_and_clean_eof() {
        let mut bytes = frame(b"hello", 100).unwrap();
        bytes.extend(frame(b"", 100).unwrap());
        let mut r = &bytes[..];
        assert_eq!(read_frame(&mut r, 100).await.unwrap().unwrap(), b"hello");
        assert_eq!(read_frame(&mut r, 100).await.unwrap().unwrap(), b"");
        assert!(read_frame(&mut r, 100).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn oversize_and_truncated_frames_are_errors() {
        let bytes = frame(&[0; 50], 100).unwrap();
        let err = read_frame(&mut &bytes[..], 10).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Protocol);
        assert!(err.message().contains("exceeds the limit"), "{err}");
        let err = read_frame(&mut &bytes[..20], 100).await.unwrap_err();
        assert!(err.message().contains("after 16 of 50"), "{err}");
        let err = read_frame(&mut &bytes[..2], 100).await.unwrap_err();
        assert!(err.message().contains("length prefix"), "{err}");
        assert!(frame(&[0; 50], 10).is_err());
    }

    #[tokio::test]
    async fn an_oversize_frame_yields_its_head_and_can_be_skipped() {
        let mut bytes = frame(&[7; 50], 100).unwrap();
        bytes.extend(frame(b"next", 100).unwrap());
        let mut r = &bytes[..];
        match read_incoming(&mut r, 10, 4).await.unwrap() {
            Some(Incoming::Oversize { head, len: 50 }) => assert_eq!(head, [7; 4]),
            other => panic!("{other:?}"),
        }
        skip(&mut r, 46).await.unwrap();
        match read_incoming(&mut r, 10, 4).await.unwrap() {
            Some(Incoming::Frame(p)) => assert_eq!(p, b"next"),
            other => panic!("{other:?}"),
        }
        let err = skip(&mut &bytes[..10], 46).await.unwrap_err();
        assert!(err.message().contains("truncated"), "{err}");
    }

    #[tokio::test]
    async fn a_large_frame_lands_in_a_buffer_of_its_own_size() {
        let payload: Vec<u8> = (0..3 * FIRST_READ + 17)
            .map(|i| u8::try_from(i % 251).unwrap())
            .collect();
        let bytes = frame(&payload, usize::MAX).unwrap();
        // Read in small pieces, as a socket gives them.
        let mut r = tokio_test_reader(&bytes, 10_000);
        let got = read_frame(&mut r, usize::MAX).await.unwrap().unwrap();
        assert_eq!(got, payload);
        assert_eq!(
            got.capacity(),
            payload.len(),
            "allocated once, to the frame's length"
        );
    }

    /// A reader over `bytes` that gives at most `chunk` bytes a read.
    fn tokio_test_reader(bytes: &[u8], chunk: usize) -> impl AsyncRead + Unpin + '_ {
        struct Chunked<'a>(&'a [u8], usize);
        impl AsyncRead for Chunked<'_> {
            fn poll_read(
                mut self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
                buf: &mut tokio::io::ReadBuf<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                let n = self.1.min(self.0.len()).min(buf.remaining());
                let (head, rest) = self.0.split_at(n);
                buf.put_slice(head);
                self.0 = rest;
                std::task::Poll::Ready(Ok(()))
            }
        }
        Chunked(bytes, chunk)
    }

    #[tokio::test]
    async fn huge_announced_length_allocates_nothing_up_front() {
        // Claims 1 GiB and ends: must fail as truncated, not try to allocate a GiB.
        let bytes = (1u32 << 30).to_le_bytes();
        let err = read_frame(&mut &bytes[..], usize::MAX).await.unwrap_err();
        assert!(err.message().contains("truncated"), "{err}");
    }
}
