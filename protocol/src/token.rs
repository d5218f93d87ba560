//! Tokens: the secret a client presents in the handshake, and the SHA-256 digest of it
//! that a node's config stores and compares in constant time.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{Error, ErrorKind};

/// A secret token, as a client presents it. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(Vec<u8>);

/// The SHA-256 of a token: what a node's config stores (`token_sha256`), never the token.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenDigest([u8; 32]);

impl Token {
    /// A token from its text; surrounding whitespace (a file's trailing newline) is
    /// dropped. An empty token is an error.
    pub fn new(text: &str) -> Result<Token, Error> {
        let t = text.trim();
        if t.is_empty() {
            return Err(Error::new(ErrorKind::Failed, "the token is empty"));
        }
        Ok(Token(t.as_bytes().to_vec()))
    }

    /// Reads a token from the first line of a file (`--token-file`).
    pub fn from_file(path: &Path) -> Result<Token, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::new(
                ErrorKind::Failed,
                format!("cannot read the token file {}: {e}", path.display()),
            )
        })?;
        Token::new(text.lines().next().unwrap_or("")).map_err(|_| {
            Error::new(
                ErrorKind::Failed,
                format!("the token file {} is empty", path.display()),
            )
        })
    }

    /// The bytes sent in the handshake.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Its SHA-256.
    pub fn digest(&self) -> TokenDigest {
        TokenDigest::of(&self.0)
    }
}

/// The digests of the tokens in a file, one per line (blank lines and lines starting
/// with `#` are skipped): what `rwc registry --register-token-file` reads. A file with no
/// token is an error, so a typo cannot leave a registry open.
pub fn digests_from_file(path: &Path) -> Result<Vec<TokenDigest>, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::new(
            ErrorKind::Failed,
            format!("cannot read the token file {}: {e}", path.display()),
        )
    })?;
    let digests: Vec<TokenDigest> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| TokenDigest::of(l.as_bytes()))
        .collect();
    if digests.is_empty() {
        return Err(Error::new(
            ErrorKind::Failed,
            format!("the token file {} holds no token", path.display()),
        ));
    }
    Ok(digests)
}

/// Whether `token` is one of `digests`, comparing with every one so that the time taken
/// does not tell which.
pub fn matches_any(digests: &[TokenDigest], token: &[u8]) -> bool {
    let presented = TokenDigest::of(token);
    digests
        .iter()
        .fold(subtle::Choice::from(0), |found, d| {
            found | d.0.ct_eq(&presented.0)
        })
        .into()
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl TokenDigest {
    /// The SHA-256 of `token`.
    pub fn of(token: &[u8]) -> TokenDigest {
        TokenDigest(Sha256::digest(token).into())
    }

    /// Whether `token` hashes to this digest, compared in constant time.
    pub fn matches(&self, token: &[u8]) -> bool {
        matches_any(std::slice::from_ref(self), token)
    }
}

impl FromStr for TokenDigest {
    type Err = String;

    /// 64 hex digits, as `rwc-node hash-token` prints.
    fn from_str(s: &str) -> Result<TokenDigest, String> {
        let make_one = "make one with `rwc-node hash-token`";
        let mut digest = [0u8; 32];
        hex::decode_to_slice(s.trim(), &mut digest).map_err(|e| match e {
            hex::FromHexError::InvalidStringLength | hex::FromHexError::OddLength => format!(
                "a token_sha256 is 64 hex digits, not {} characters ({make_one})",
                s.trim().len()
            ),
            hex::FromHexError::InvalidHexCharacter { c, .. } => {
                format!("a token_sha256 is hex digits only, not `{c}` ({make_one})")
            }
        })?;
        Ok(TokenDigest(digest))
    }
}

impl fmt::Display for TokenDigest {
    /// Lowercase hex, as a config file holds it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenDigest({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_round_trips_and_matches_only_its_token() {
        let token = Token::new("s3cret\n").unwrap();
        assert_eq!(token.as_bytes(), b"s3cret");
        let digest = token.digest();
        let parsed: TokenDigest = digest.to_string().parse().unwrap();
        assert_eq!(parsed, digest);
        assert!(parsed.matches(b"s3cret"));
        assert!(!parsed.matches(b"s3cre"));
        assert!(!parsed.matches(b""));
        // The SHA-256 of "s3cret", as `printf s3cret | sha256sum` prints it.
        assert_eq!(
            digest.to_string(),
            "1ec1c26b50d5d3c58d9583181af8076655fe00756bf7285940ba3670f99fcba0"
        );
        assert!(format!("{token:?}").contains("redacted"));
        assert!(!format!("{token:?}").contains("s3cret"));
    }

    #[test]
    fn bad_digests_say_what_a_digest_is() {
        let short = "abcd".parse::<TokenDigest>().unwrap_err();
        assert!(short.contains("64 hex digits"), "{short}");
        let bad = "z".repeat(64).parse::<TokenDigest>().unwrap_err();
        assert!(bad.contains("hex digits only"), "{bad}");
        assert!(Token::new("  \n").is_err());
    }

    #[test]
    fn token_files_hold_one_token_a_line() {
        let dir = std::env::temp_dir().join(format!("rwc-token-test-{}", std::process::id()));
        std::fs::write(&dir, "# registration tokens\nalpha\n\n  beta  \n").unwrap();
        let digests = digests_from_file(&dir).unwrap();
        assert_eq!(digests.len(), 2);
        assert!(matches_any(&digests, b"alpha"));
        assert!(matches_any(&digests, b"beta"));
        assert!(!matches_any(&digests, b"gamma"));
        assert!(!matches_any(&digests, b"# registration tokens"));
        std::fs::write(&dir, "# nothing\n\n").unwrap();
        let e = digests_from_file(&dir).unwrap_err();
        assert!(e.message().contains("holds no token"), "{e}");
        std::fs::remove_file(&dir).unwrap();
    }
}
