//! `weft-sim`: the continuum simulator (issue 13).
//!
//! - The field's inputs: topologies, StateSim's three files per network
//!   (`.nodes`, `.links`, `.edges`, see `data/statesim/README.md`), validated
//!   with the file and line of what is wrong, and the seed's network model
//!   over them: routes that minimise the transfer time, and the transfer time
//!   of a payload as the sum of its serialisation on each link
//!   ([`Topology::transfer_secs`]); the seed's workload, a Spår trace of DAG
//!   jobs turned into stateful chains ([`Pool::from_spar`]); CSV traces and a
//!   synthetic generator ([`Workload`]).
//! - A deterministic discrete-event world ([`des`], [`continuum`]) in which a
//!   [`continuum::Policy`] places every step: the seed's Load and Load+net,
//!   or Weft's own `weft-sched` ([`policies`]); studies over policies, state
//!   models and seeded replications ([`study`]).
//! - The seed's evaluation as its own simulator computes it ([`seed003`],
//!   [`reproduce`]); how StateSim computes, and where Weft follows it, is in
//!   `docs/seed-003-statesim.md`.
//!
//! ```
//! let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/statesim");
//! let t = weft_sim::Topology::load(&dir, "iiot.0").unwrap();
//! assert_eq!(t.nodes().len(), 80);
//! // One megabyte from a Raspberry Pi to its neighbour: its own link, the
//! // shared LAN link at 300 Mb/s, the neighbour's link.
//! let (secs, hops) = t.transfer("rpi3_0", "rpi3_1", 1_000_000).unwrap();
//! assert_eq!(hops, 3);
//! assert!((secs - 0.042_667).abs() < 1e-5);
//! ```

pub mod continuum;
pub mod des;
mod plot;
pub mod policies;
pub mod reproduce;
pub mod seed003;
pub mod study;
pub mod summary;
mod topology;
mod trace;
mod workload;

pub use topology::{InputError, Link, LinkKind, Node, Topology};
pub use trace::{Chain, Step, Synthetic, Workload};
pub use workload::{Factors, Job, Pool, Task};
