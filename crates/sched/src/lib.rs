//! The placement policy: which node runs an invocation. A pure function — a
//! [`View`] of the nodes and a [`Request`] in, a [`Decision`] out — with no
//! clock, socket, thread or randomness of its own, so a test, the simulator
//! or `weft explain` can replay any decision exactly.
//!
//! ```
//! use weft_sched::{place, NodeView, Reason, Request, Tier, View};
//!
//! let mut view = View {
//!     local: "edge-a1".into(),
//!     nodes: vec![
//!         NodeView::new("edge-a1", Tier::Edge, 4).label("site", "a").link(0, 1_000_000_000),
//!         NodeView::new("cloud-1", Tier::Cloud, 64).link(20_000, 25_000_000),
//!     ],
//!     ..View::default()
//! };
//! view.exec.observe("resize", "edge-a1", 8_000);
//! view.exec.observe("resize", "cloud-1", 2_000);
//!
//! // Idle and eligible: the local node runs it, without scoring the others.
//! let d = place(&view, &Request::new("resize", "edge-a1")).unwrap();
//! assert_eq!((d.node.as_str(), d.reason), ("edge-a1", Reason::Local));
//!
//! // All four slots busy and eight waiting: the cloud is expected sooner.
//! // edge-a1: queue 8 000 × (4 + 8 + 1 − 4) / 4 = 18 000 + exec 8 000 + cold 1 000;
//! // cloud-1: exec 2 000 + transfer 20 000 + cold 1 000.
//! (view.nodes[0].inflight, view.nodes[0].queued) = (4, 8);
//! let d = place(&view, &Request::new("resize", "edge-a1")).unwrap();
//! assert_eq!(d.node, "cloud-1");
//! assert_eq!(
//!     d.explain(),
//!     "placed on cloud-1: local node overloaded (4/4 busy, 8 queued); least expected \
//!      completion 23.0 ms (queue 0.0 + exec 2.0 + transfer 20.0 + cold 1.0) among 2 \
//!      eligible; runner-up edge-a1 27.0 ms"
//! );
//! ```
//!
//! # The policy
//!
//! 1. **Filter.** A node is eligible unless, checked in this order (a node
//!    is counted in [`Rejections`] under the first it fails): it is down; the
//!    request excludes it ([`Request::exclude`], for a retry elsewhere); it
//!    has no slots; its tier is not in [`Requirements::tiers`] (empty: any);
//!    a label in [`Requirements::labels`] is missing or differs; or it breaks
//!    [`Requirements::privacy`] relative to the request's *origin* node —
//!    `site`: its `site` label must equal the origin's (an origin without one
//!    keeps only itself), `tier`: same tier as the origin; or it lacks what
//!    the function declares: a key-value store ([`Requirements::stores`]), an
//!    MQTT broker ([`Requirements::broker`]), or topics covering those it
//!    publishes on ([`Requirements::topics`]). [`exclusions`] lists each
//!    node ruled out and why, for `weft explain`.
//! 2. **Local fast path.** If the request entered here (`origin ==
//!    View::local`) and the local node is eligible, has a free slot
//!    (`inflight < slots`) and nobody waiting (`queued == 0`), it runs here:
//!    [`Reason::Local`]. Only that node is scored (for the breakdown); the
//!    others are not looked at — except, when the local node lacks a `near`
//!    store, to find the nearest node serving it — so `considered` and
//!    `rejected` are not computed and stay 0.
//! 3. **Least expected completion.** Otherwise every eligible node is scored,
//!    in µs, and the least `expected` wins, ties to the smaller name:
//!
//!    ```text
//!    expected = queue + exec + transfer + cold + penalty
//!    exec     = learned mean for (function, node)            (ExecTable, EWMA)
//!             | else the function's mean over nodes that have one
//!             | else DEFAULT_EXEC_US (5 ms)
//!    queue    = exec × max(0, inflight + queued + 1 − slots) / slots
//!    transfer = 0 on the deciding node (it holds the request)
//!             | else rtt + (bytes_in + bytes_out) × 10⁶ / bandwidth
//!               (unknown rtt: 50 ms, unknown bandwidth: 10 MB/s)
//!    cold     = 0 if warm there, else COLD_START_US (1 ms)
//!               + ARTIFACT_FETCH_US (20 ms) if the node is known to lack the artifact
//!    near     = Σ over near stores the node does not serve:
//!                   max(rtt(node), rtt(nearest up node serving it))   (none: 50 ms)
//!    latency  = queue + exec + transfer + cold + near
//!    penalty  = near
//!             + max(0, latency − latency target)
//!             + round(cost_weight × node.cost × exec) + round(energy_weight × node.energy × exec)
//!    ```
//!
//!    Divisions are integer, floored. The `near` term stands in for the
//!    candidate-to-store distance, which the deciding node cannot see: it is
//!    exact when the candidate or the store is the deciding node, and
//!    otherwise a guess between the triangle bounds `|a − b|` and `a + b`. A
//!    node over the latency target pays its excess twice, so it ranks lower
//!    but stays eligible; since price and energy are not time, the target
//!    is what a cheap but slow node trades against. [`Decision::target_met`]
//!    reports whether the chosen node's `latency` meets it. The reason is
//!    [`Reason::LocalOverloaded`] or [`Reason::LocalIneligible`] when the
//!    request entered here, [`Reason::Best`] when it entered elsewhere. The
//!    runner-up is the second in the same order. No eligible node at all is
//!    [`PlaceError::NoEligibleNode`], whose message counts the rejections
//!    per constraint.
//!
//! # Determinism
//!
//! The same `(View, Request)` gives the same `Decision`, byte-identical when
//! serialized, whatever the order of [`View::nodes`]:
//!
//! - every term is an integer number of µs; the only floats (the EWMA mean,
//!   price and energy weights) are computed in a fixed order and rounded
//!   once, with `f64::round`;
//! - ties break by node name, so the winner and runner-up are the first two
//!   nodes of a total order, whatever order they were scanned in;
//! - sets and maps that reach the output are `BTreeMap`/`BTreeSet`; the
//!   [`ExecTable`]'s per-node hash maps (fixed, unseeded hasher) are only
//!   looked up, summed as integers, or serialized sorted;
//! - scoring a node stops early once a lower bound of its score (its round
//!   trip, then its transfer and data distance, then with its execution,
//!   queue and price — every term is non-negative and the over-target term
//!   grows with the others) exceeds the current runner-up: such a node can
//!   be neither best nor runner-up, whatever the scan order, so this saves
//!   work without changing the result (a test compares with full scoring).
//!
//! # The index
//!
//! Decisions are made over an [`Index`]: the view with every name interned
//! and what the scan reads per node in dense rows — tier, load, link, site —
//! and, per function, per label and per store, bit sets and tables over the
//! nodes (warm, holds the artifact, carries the label, serves the store,
//! learned time). [`place`] builds one from a `View`; a node keeps one and
//! updates a row per heartbeat ([`Index::upsert`]), and decides with
//! [`place_in`], passing its own load for the function ([`Local`]). The
//! decision is the same either way (the golden files and a randomized test
//! check it).
//!
//! Cost: the fast path is one filter check and one scoring (a few hundred
//! ns). The full scan is one filter check per node and, for the nodes not cut
//! short, an array read of the learned time and a bit test of the warm set;
//! no allocation and no string comparison per node (names are compared only
//! to break an exact tie). `cargo run --release -p weft-bench -- placement`
//! measures both on 1,000 nodes.

mod admit;
mod decision;
mod exec;
mod index;
mod model;
mod policy;
mod profile;

pub use admit::{left_us, slack_us, unmeetable};
pub use decision::{Constraint, Cost, Decision, Excluded, PlaceError, Reason, Rejections};
pub use exec::{EWMA_ALPHA, Estimate, ExecTable};
pub use index::{ALL_TOPICS, Index};
pub use model::{NodeView, ParseTierError, Privacy, Request, Requirements, StateUse, Tier, View};
pub use policy::{
    ARTIFACT_FETCH_US, COLD_START_US, DEFAULT_BANDWIDTH_BPS, DEFAULT_EXEC_US, DEFAULT_RTT_US,
    Local, UNKNOWN_STORE_US, exclusions, owner_rank, place, place_in,
};
pub use profile::{PROFILE_WINDOW, Profile, SUMMARY_QUANTILES, Window};
