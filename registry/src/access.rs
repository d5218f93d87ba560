//! Who may use a registry: [`Access`] holds the tokens allowed to register and, if
//! listing is closed, those allowed to list; it authenticates connections in the handshake
//! and says what each may do ([`Role`]).
//!
//! - No registration tokens: anyone who can connect may register (for a registry on
//!   loopback; one beyond it refuses to start without tokens, see [`crate::RegistryServer`]).
//! - Registration tokens: only a connection that presents one may register or unregister;
//!   one that presents no token may only list (if listing is open), and one that presents
//!   a wrong token is refused in the handshake.
//! - Lookup tokens: listing needs one of them (or a registration token).

use rwc_protocol::token::matches_any;
use rwc_protocol::{Authenticator, Error, ErrorKind, PeerInfo, TokenDigest};

/// The tokens a registry accepts.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// Tokens allowed to register (and list); empty: registration is open.
    pub register: Vec<TokenDigest>,
    /// Tokens allowed to list; `None`: listing is open to every connection.
    pub lookup: Option<Vec<TokenDigest>>,
}

/// What a connection to the registry may do, by the token it presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Register, unregister and list.
    Register,
    /// List and look up only.
    Lookup,
}

impl Role {
    /// The principal name a connection in this role authenticates as.
    pub fn name(self) -> &'static str {
        match self {
            Role::Register => "register",
            Role::Lookup => "lookup",
        }
    }

    /// The role named `name` (a principal name from [`Access`]'s authenticator).
    pub fn named(name: &str) -> Option<Role> {
        [Role::Register, Role::Lookup]
            .into_iter()
            .find(|r| r.name() == name)
    }
}

impl Access {
    /// Whether anyone may register.
    pub fn registration_is_open(&self) -> bool {
        self.register.is_empty()
    }

    fn role(&self, token: Option<&[u8]>) -> Result<Role, &'static str> {
        match token {
            Some(t) if matches_any(&self.register, t) => Ok(Role::Register),
            Some(t) if self.lookup.as_ref().is_some_and(|l| matches_any(l, t)) => Ok(Role::Lookup),
            // An open registry ignores tokens, as a node without principals does.
            Some(_) if self.registration_is_open() && self.lookup.is_none() => Ok(Role::Register),
            Some(_) => Err("its token is not one the registry accepts"),
            None if self.registration_is_open() => match self.lookup {
                None => Ok(Role::Register),
                Some(_) => Err("it presented no token, and listing needs one"),
            },
            None if self.lookup.is_none() => Ok(Role::Lookup),
            None => Err("it presented no token, and listing needs one"),
        }
    }
}

impl Authenticator for Access {
    fn authenticate(&self, peer: &PeerInfo, credentials: Option<&[u8]>) -> Result<String, Error> {
        match self.role(credentials) {
            Ok(role) => Ok(role.name().to_owned()),
            Err(why) => {
                tracing::warn!(peer = %peer, reason = why, "refused a connection: authentication failed");
                Err(Error::new(ErrorKind::Denied, "authentication failed"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(t: &str) -> TokenDigest {
        TokenDigest::of(t.as_bytes())
    }

    #[test]
    fn tokens_decide_the_role() {
        let open = Access::default();
        assert_eq!(open.role(None), Ok(Role::Register));
        assert_eq!(open.role(Some(b"anything")), Ok(Role::Register));

        let closed = Access {
            register: vec![digest("reg")],
            lookup: None,
        };
        assert_eq!(closed.role(Some(b"reg")), Ok(Role::Register));
        assert_eq!(closed.role(None), Ok(Role::Lookup));
        assert!(closed.role(Some(b"wrong")).is_err());

        let private = Access {
            register: vec![digest("reg")],
            lookup: Some(vec![digest("look")]),
        };
        assert_eq!(private.role(Some(b"look")), Ok(Role::Lookup));
        assert_eq!(private.role(Some(b"reg")), Ok(Role::Register));
        assert!(private.role(None).is_err());
        assert!(private.role(Some(b"wrong")).is_err());
    }
}
