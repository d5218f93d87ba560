//! [`RegistryClient`]: a connection to a registry.

use std::time::Duration;

use rwc_api::Request;
use rwc_api::registry::{List, Lookup, Register, RegistryEntry, Unregister};
use rwc_protocol::{Address, CallOptions, ConnectOptions, Connection, Error, Service};

/// A connection to a registry.
#[derive(Debug)]
pub struct RegistryClient {
    conn: Connection,
}

impl RegistryClient {
    /// Connects to the registry at `addr` (`HOST:PORT`, `tls://HOST:PORT`, `unix:/path`),
    /// with no token.
    ///
    /// # Cancel safety
    /// Dropping the future abandons the attempt.
    pub async fn connect(addr: &str) -> Result<RegistryClient, Error> {
        RegistryClient::connect_with(addr, &ConnectOptions::default()).await
    }

    /// Connects to the registry at `addr` with `options`: the TLS settings for a `tls://`
    /// registry, and the token it wants (to register, or to list if listing is closed).
    ///
    /// # Cancel safety
    /// Dropping the future abandons the attempt.
    pub async fn connect_with(
        addr: &str,
        options: &ConnectOptions,
    ) -> Result<RegistryClient, Error> {
        let address: Address = addr.parse()?;
        let conn = address
            .connect(
                options,
                Service::new("rwc-registry-client").into_object(),
                crate::config("rwc-registry-client"),
            )
            .await
            .map_err(|e| e.in_context(format_args!("cannot reach the registry at {addr}")))?;
        Ok(RegistryClient { conn })
    }

    /// Adds or refreshes the entry of `addr`; it expires `ttl` after this call unless
    /// refreshed (whole seconds, at least one). A registry that takes longer than the TTL
    /// to answer is given up on.
    ///
    /// # Cancel safety
    /// Dropping the future cancels the request; the entry may or may not have been made.
    pub async fn register(&self, addr: &str, tags: &[&str], ttl: Duration) -> Result<(), Error> {
        let req = Register {
            addr: addr.to_owned(),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            ttl_secs: ttl.as_secs().max(1),
        };
        let options = CallOptions::timeout(ttl.max(Duration::from_secs(1)));
        let reply = self
            .conn
            .root()
            .call_with(Register::METHOD, req.to_args()?, options)
            .await?;
        Register::reply(reply)
    }

    /// Removes the entry of `addr`; whether there was one.
    ///
    /// # Cancel safety
    /// Dropping the future cancels the request.
    pub async fn unregister(&self, addr: &str) -> Result<bool, Error> {
        let addr = addr.to_owned();
        self.request(&Unregister { addr }).await
    }

    /// Every live entry.
    ///
    /// # Cancel safety
    /// Dropping the future cancels the request.
    pub async fn list(&self) -> Result<Vec<RegistryEntry>, Error> {
        self.request(&List {}).await
    }

    /// The live entries tagged `tag`.
    ///
    /// # Cancel safety
    /// Dropping the future cancels the request.
    pub async fn lookup(&self, tag: &str) -> Result<Vec<RegistryEntry>, Error> {
        let tag = tag.to_owned();
        self.request(&Lookup { tag }).await
    }

    /// Whether the connection is closed (the registry went away).
    pub fn is_closed(&self) -> bool {
        self.conn.is_closed()
    }

    /// Closes the connection.
    pub fn close(&self) {
        self.conn.close();
    }

    async fn request<R: Request>(&self, req: &R) -> Result<R::Reply, Error> {
        R::reply(
            self.conn
                .root()
                .call_value(R::METHOD, req.to_args()?)
                .await?,
        )
    }
}
