//! `weft-sim`: the continuum simulator (issue 13), in slices.
//!
//! So far it reads the field's inputs: the topologies, StateSim's three files per
//! network (`.nodes`, `.links`, `.edges`, see `data/statesim/README.md`),
//! validated with the file and line of what is wrong, and the seed's
//! network model over them: routes that minimise the transfer time, and the
//! transfer time of a payload as the sum of its serialisation on each link
//! ([`Topology::transfer_secs`]); and the seed's workload, a Spår trace of
//! DAG jobs turned into stateful chains ([`Pool::from_spar`]). How StateSim
//! computes, and where Weft follows it, is in `docs/seed-003-statesim.md`.
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

mod plot;
pub mod reproduce;
pub mod seed003;
mod topology;
mod workload;

pub use topology::{InputError, Link, LinkKind, Node, Topology};
pub use workload::{Factors, Job, Pool, Task};
