//! The fabric: nodes that share functions, load and work over NATS.
//!
//! A [`Mesh`] is one node's membership of the fabric. It owns every NATS
//! subject and JetStream bucket Weft uses, and nothing above it speaks NATS:
//!
//! | what | where |
//! |---|---|
//! | heartbeats (tier, labels, capacity, load, warm functions, learned execution times) | core NATS, `weft.hb.<node>`, every beat |
//! | round-trip probes | request/reply on `weft.node.<node>.ping` |
//! | remote invocations (chunked both ways, cancellable) | `weft.node.<node>.call`, replies on the caller's inbox |
//! | the registry (one record per function, every version) | JetStream key-value bucket `weft-registry` |
//! | artifacts (the module bytes, by sha256) | JetStream object store `weft-artifacts` |
//! | key-value stores mapped to `backend = "fabric"` | JetStream key-value buckets `weft-kv-<label>` |
//! | key-value stores mapped to `backend = "node"` (a site's store) | request/reply on `weft.node.<node>.kv` to the node that keeps it |
//!
//! The node above (the controller) plugs in through [`Host`]: what to
//! announce, how to run a call that arrives, and how to apply a registry
//! change. Every message from a peer is checked before it is believed
//! ([`wire`]); a refused one is logged with the peer's name, and the node
//! goes on.

mod kv;
mod mesh;
mod node_kv;
pub mod wire;

pub use kv::kv_bucket;
pub use mesh::{
    Auth, CallError, Host, LocalLoad, Mesh, MeshConfig, MeshError, Peer, RegistryEvent, Tls,
};
pub use wire::{CallMeta, Heartbeat, HttpMeta, ReplyMeta, ReplyOutcome, valid_node_name};
