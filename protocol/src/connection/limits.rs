//! The limits in force on a connection, agreed in the handshake.
//!
//! Each side announces the largest frame and the decoding bounds it accepts as the feature
//! `limits:frame=…,depth=…,len=…,values=…` in its [`Hello`](crate::Hello); both then use
//! the smaller of each, for what they send and for what they accept. A sender checks every
//! call and result against these before sending it, so a value the peer would refuse fails
//! only its own call. A peer that announces no limits (an older build) is taken to accept
//! the defaults, which is what it enforces; unknown keys are ignored, so limits can be
//! added without a new protocol version.

use std::fmt;

use super::ConnectionConfig;
use crate::error::Error;
use crate::value::DecodeLimits;

/// The default [`ConnectionConfig::max_frame`]: 128 MiB.
pub(crate) const DEFAULT_MAX_FRAME: usize = 128 * 1024 * 1024;

/// The smallest frame limit a peer may announce: control messages (releases, cancels,
/// aborts with their reason) must always fit.
pub(crate) const MIN_FRAME: usize = 4096;

const FEATURE_PREFIX: &str = "limits:";

/// The limits of one side, or those agreed by both ([`Connection::limits`]).
///
/// [`Connection::limits`]: crate::Connection::limits
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionLimits {
    /// Largest frame, in bytes.
    pub max_frame: usize,
    /// Bounds on the values in one message.
    pub decode: DecodeLimits,
}

impl ConnectionLimits {
    /// What a peer that announces nothing accepts: the defaults of this crate.
    pub const DEFAULT: ConnectionLimits = ConnectionLimits {
        max_frame: DEFAULT_MAX_FRAME,
        decode: DecodeLimits::DEFAULT,
    };

    /// This side's limits, from its configuration.
    pub(crate) fn of(config: &ConnectionConfig) -> ConnectionLimits {
        ConnectionLimits {
            max_frame: config.max_frame,
            decode: config.limits,
        }
    }

    /// The smaller of each limit.
    pub fn min(self, other: ConnectionLimits) -> ConnectionLimits {
        ConnectionLimits {
            max_frame: self.max_frame.min(other.max_frame),
            decode: self.decode.min(other.decode),
        }
    }

    /// The feature that announces these limits in a handshake.
    pub(crate) fn to_feature(self) -> String {
        format!("{FEATURE_PREFIX}{self}")
    }

    /// The features to announce: `features` with these limits in place of any limits
    /// feature among them.
    pub(crate) fn announce(self, features: &[String]) -> Vec<String> {
        features
            .iter()
            .filter(|f| !f.starts_with(FEATURE_PREFIX))
            .cloned()
            .chain([self.to_feature()])
            .collect()
    }

    /// The limits a peer announced among its `features`; the defaults if it announced
    /// none. A limits feature that does not parse, or a frame limit too small for control
    /// messages, is a protocol error: the handshake fails with it.
    pub(crate) fn from_features(features: &[String]) -> Result<ConnectionLimits, Error> {
        let mut limits = ConnectionLimits::DEFAULT;
        let Some(announced) = features.iter().find_map(|f| f.strip_prefix(FEATURE_PREFIX)) else {
            return Ok(limits);
        };
        let malformed = |why: &str| {
            Error::protocol(format!(
                "peer announced malformed limits `{announced}`: {why}"
            ))
        };
        for field in announced.split(',').filter(|f| !f.is_empty()) {
            let (key, value) = field
                .split_once('=')
                .ok_or_else(|| malformed("expected key=number"))?;
            let number = |what: &str| malformed(&format!("{what} is not a number"));
            match key {
                "frame" => limits.max_frame = value.parse().map_err(|_| number("frame"))?,
                "depth" => limits.decode.max_depth = value.parse().map_err(|_| number("depth"))?,
                "len" => {
                    limits.decode.max_collection_len = value.parse().map_err(|_| number("len"))?;
                }
                "values" => {
                    limits.decode.max_values = value.parse().map_err(|_| number("values"))?;
                }
                // Limits of a newer build that this one does not know.
                _ => {}
            }
        }
        if limits.max_frame < MIN_FRAME {
            return Err(malformed(&format!(
                "a frame limit under {MIN_FRAME} bytes leaves no room for control messages"
            )));
        }
        Ok(limits)
    }
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits::DEFAULT
    }
}

/// `frame=…,depth=…,len=…,values=…`, the form announced in the handshake.
impl fmt::Display for ConnectionLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "frame={},depth={},len={},values={}",
            self.max_frame,
            self.decode.max_depth,
            self.decode.max_collection_len,
            self.decode.max_values
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn announced_limits_round_trip_and_missing_ones_are_defaults() {
        let mine = ConnectionLimits {
            max_frame: 1 << 20,
            decode: DecodeLimits {
                max_depth: 16,
                max_collection_len: 1000,
                max_values: 5000,
            },
        };
        let features = vec!["other".to_owned(), mine.to_feature()];
        assert_eq!(ConnectionLimits::from_features(&features).unwrap(), mine);
        assert_eq!(
            ConnectionLimits::from_features(&[]).unwrap(),
            ConnectionLimits::DEFAULT
        );
        // Only some keys, and one from the future: the rest stay at their defaults.
        let some = ConnectionLimits::from_features(&["limits:depth=8,colour=blue".into()]).unwrap();
        assert_eq!(some.decode.max_depth, 8);
        assert_eq!(some.max_frame, DEFAULT_MAX_FRAME);
        assert_eq!(some.decode.max_values, DecodeLimits::DEFAULT.max_values);
    }

    #[test]
    fn the_smaller_of_each_limit_wins() {
        let a = ConnectionLimits {
            max_frame: 1 << 20,
            decode: DecodeLimits {
                max_depth: 200,
                ..DecodeLimits::DEFAULT
            },
        };
        let both = a.min(ConnectionLimits::DEFAULT);
        assert_eq!(both.max_frame, 1 << 20);
        assert_eq!(both.decode.max_depth, 128);
        assert_eq!(both, ConnectionLimits::DEFAULT.min(a));
    }

    #[test]
    fn malformed_limits_are_a_protocol_error() {
        for bad in [
            "limits:frame=lots",
            "limits:depth",
            "limits:frame=100",
            "limits:depth=-1",
            "limits:len=99999999999999999999999",
        ] {
            let err = ConnectionLimits::from_features(&[bad.to_owned()]).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Protocol, "{bad}");
            assert!(err.message().contains("malformed limits"), "{bad}: {err}");
        }
    }
}
