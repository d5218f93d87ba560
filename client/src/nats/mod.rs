//! rwc on NATS JetStream, for fleets beyond a handful of nodes: nodes started with
//! `rwc-node --nats URL` list themselves in a KV bucket ([`NatsDiscovery`], and
//! [`Pool::from_nats`](crate::Pool::from_nats) for direct connections to them), and
//! [`NatsFleet::map_durable`] runs maps whose inputs live in NATS, so they survive the
//! loss of a node, of a NATS server or of the client. What travels is defined once, in
//! [`rwc_api::nats`].

mod discovery;
mod durable;

pub use self::discovery::{NatsDiscovery, NodeEvent, watch_nodes};
pub use self::durable::{DurableMapOptions, DurableReport, JobStatus, NatsFleet};
pub use rwc_api::nats::{JobMeta, NodeEntry};
pub use rwc_nats::FleetOptions;
