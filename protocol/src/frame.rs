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
    let too_big = || {
        Error::bad_argument(format!(
            "message of {len} bytes exceeds the frame limit of {max_frame} bytes; send less at once"
        ))
    };
    if len > max_frame {
        return Err(too_big());
    }
    let len32 = u32::try_from(len).map_err(|_| too_big())?;
    buf[start..start + PREFIX_LEN].copy_from_slice(&len32.to_le_bytes());
    Ok(())
}

/// Encodes one whole frame around `payload`.
pub fn frame(payload: &[u8], max_frame: usize) -> Result<Vec<u8>, Error> {
    let mut buf = Vec::with_capacity(PREFIX_LEN + payload.len());
    let start = begin_frame(&mut buf);
    buf.extend_from_slice(payload);
    finish_frame(&mut buf, start, max_frame)?;
    Ok(buf)
}

/// Reads one frame's payload. `Ok(None)` is a clean end of stream between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max_frame: usize,
) -> Result<Option<Vec<u8>>, Error> {
    let mut prefix = [0u8; PREFIX_LEN];
    let mut got = 0;
    while got < PREFIX_LEN {
        let n = r
            .read(&mut prefix[got..])
            .await
            .map_err(|e| Error::disconnected(format!("read failed: {e}")))?;
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
    let len = usize::try_from(u32::from_le_bytes(prefix))
        .map_err(|_| Error::protocol("frame length does not fit this platform"))?;
    if len > max_frame {
        return Err(Error::protocol(format!(
            "frame of {len} bytes exceeds the limit of {max_frame} bytes"
        )));
    }
    let mut payload = Vec::with_capacity(len.min(1 << 20));
    let len64 = u64::try_from(len).map_err(|_| Error::protocol("frame length does not fit"))?;
    let read = r
        .take(len64)
        .read_to_end(&mut payload)
        .await
        .map_err(|e| Error::disconnected(format!("read failed: {e}")))?;
    if read != len {
        return Err(Error::protocol(format!(
            "truncated frame: stream ended after {read} of {len} bytes"
        )));
    }
    Ok(Some(payload))
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
    async fn huge_announced_length_allocates_nothing_up_front() {
        // Claims 1 GiB and ends: must fail as truncated, not try to allocate a GiB.
        let bytes = (1u32 << 30).to_le_bytes();
        let err = read_frame(&mut &bytes[..], usize::MAX).await.unwrap_err();
        assert!(err.message().contains("truncated"), "{err}");
    }
}
