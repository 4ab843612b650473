//! The scheduler's view of the fabric, kept current per heartbeat: one
//! [`Index`] whose rows the heartbeats replace, read by every decision.

use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;
use weft_controller::Function;
use weft_manifest::StateModel;
use weft_mesh::{MeshConfig, Peer};
use weft_sched::{
    Decision, Estimate, Excluded, Index, Local, NodeView, PlaceError, Privacy, Request, StateUse,
};

/// The weight of the newest call in a peer's observed overhead.
const OVERHEAD_WEIGHT: f64 = 0.2;

/// The view and this node's own row.
pub(crate) struct Placer {
    index: RwLock<Index>,
    local: String,
    /// This node's row as it joined, for the updates of its own measures.
    local_row: Mutex<NodeView>,
    /// Calls this node has sent each peer and not yet had answered: that
    /// peer runs at least these, whatever a heartbeat it sent before they
    /// arrived says.
    outstanding: Mutex<HashMap<String, u32>>,
    /// Each peer's execution profiles by function (p50, p90, p99, max, µs),
    /// from its last heartbeat: what a hand-off by slack plans with.
    profiles: Mutex<HashMap<String, BTreeMap<String, [u64; 4]>>>,
    /// What calls to each peer took beyond the run there, µs (an EWMA of
    /// the last ones): the round trip as calls see it, with the fabric's
    /// hops and the load on both ends, which a heartbeat's does not show.
    overhead: Mutex<HashMap<String, f64>>,
}

/// A call out to a peer, counted in the placer's view until it drops.
pub(crate) struct Sent<'a> {
    placer: &'a Placer,
    node: String,
}

impl Drop for Sent<'_> {
    /// The call was answered (or failed): it no longer runs there, so it
    /// stops counting in the peer's row now, not at its next heartbeat (a
    /// client sending a call a millisecond would otherwise see a peer fill
    /// up with work that has long finished, and keep the rest local; the
    /// simulator showed it).
    fn drop(&mut self) {
        if let Some(n) = self.placer.outstanding.lock().get_mut(&self.node) {
            *n = n.saturating_sub(1);
        }
        self.placer.index.write().sub_inflight(&self.node, 1);
    }
}

/// This node as a row of the view: what does not change per function.
pub(crate) fn local_row(
    cfg: &MeshConfig,
    slots: u32,
    stores: Vec<String>,
    broker: bool,
    topics: Vec<String>,
) -> NodeView {
    NodeView {
        labels: cfg.labels.clone(),
        rtt_us: Some(0),
        stores: stores.into_iter().collect(),
        cost: cfg.cost,
        energy: cfg.energy,
        broker,
        topics,
        ..NodeView::new(cfg.name.clone(), cfg.tier, slots.max(1))
    }
}

impl Placer {
    pub(crate) fn new(local: NodeView) -> Placer {
        let name = local.name.clone();
        let mut index = Index::default();
        index.set_local(&name);
        index.upsert(&local);
        Placer {
            index: RwLock::new(index),
            local: name,
            local_row: Mutex::new(local),
            outstanding: Mutex::default(),
            profiles: Mutex::default(),
            overhead: Mutex::default(),
        }
    }

    /// A peer's heartbeat: its row replaced (the calls this node sent it
    /// since its last beat are counted in that beat now). Returns whether
    /// the membership changed (a node joined, came back or went down).
    pub(crate) fn peer(&self, p: &Peer) -> bool {
        let hb = &p.heartbeat;
        if hb.name == self.local {
            return false;
        }
        let ours = self.outstanding.lock().get(&hb.name).copied().unwrap_or(0);
        self.profiles
            .lock()
            .insert(hb.name.clone(), hb.exec_profile.clone());
        let row = NodeView {
            labels: hb.labels.clone(),
            up: p.up,
            // A beat sent before our latest calls reached it does not count
            // them: a burst would otherwise all go to the peer whose beat
            // came last.
            inflight: hb.inflight.max(ours),
            queued: hb.queued,
            rtt_us: p.rtt_us,
            bandwidth_bps: p.bandwidth_bps,
            warm: hb.warm.clone(),
            stores: hb.stores.clone(),
            store_rtt_us: hb.store_rtt_us.clone(),
            cost: hb.cost,
            energy: hb.energy,
            broker: hb.broker,
            topics: hb.topics.clone(),
            ..NodeView::new(hb.name.clone(), hb.tier, hb.slots)
        };
        let mut ix = self.index.write();
        let was_up = ix.is_up(&hb.name);
        ix.upsert(&row);
        ix.set_estimates(
            &hb.name,
            hb.exec_us.iter().map(|(f, us)| {
                (
                    f.as_str(),
                    Estimate {
                        mean_us: *us as f64,
                        samples: 1,
                    },
                )
            }),
        );
        was_up != Some(p.up)
    }

    /// This node's round trips to its stores, as just measured.
    pub(crate) fn set_store_rtts(&self, rtts: BTreeMap<String, u64>) {
        let mut row = self.local_row.lock();
        row.store_rtt_us = rtts;
        self.index.write().upsert(&row);
    }

    /// Marks peers up or down by their heartbeats' age; returns whether
    /// any changed.
    pub(crate) fn sweep(&self, up: impl Fn(&str) -> bool) -> bool {
        let names: Vec<String> = self.index.read().names().to_vec();
        let mut ix = self.index.write();
        let mut changed = false;
        for n in names.iter().filter(|n| **n != self.local) {
            let now = up(n);
            changed |= ix.is_up(n) != Some(now);
            ix.set_up(n, now);
        }
        changed
    }

    /// Whether the view holds `node` up (what placement believes).
    pub(crate) fn is_up(&self, node: &str) -> bool {
        self.index.read().is_up(node).unwrap_or(false)
    }

    /// Where an invocation of `f` with a body of `bytes` runs now; `local`
    /// is this node's load for `f`. When it is another node, the call is
    /// counted there in the same step as the decision (so decisions made at
    /// once see each other's), and for as long as the returned guard lives
    /// whatever that node's heartbeats say: a burst does not herd onto the
    /// peer that looked idle.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn place(
        &self,
        f: &Function,
        bytes: u64,
        key: Option<&str>,
        exclude: &BTreeSet<String>,
        local: &Local,
        context: Privacy,
    ) -> Result<(Decision, Option<Sent<'_>>), PlaceError> {
        let mut req = self.request(f, bytes, key, exclude);
        req.context_privacy = context;
        let mut ix = self.index.write();
        let decision = weft_sched::place_in(&ix, &req, Some(local))?;
        if decision.local {
            return Ok((decision, None));
        }
        ix.add_inflight(&decision.node, 1);
        *self
            .outstanding
            .lock()
            .entry(decision.node.clone())
            .or_default() += 1;
        let sent = Sent {
            placer: self,
            node: decision.node.clone(),
        };
        Ok((decision, Some(sent)))
    }

    /// A call to `node` answered, `us` beyond the run there.
    pub(crate) fn observed(&self, node: &str, us: u64) {
        let mut o = self.overhead.lock();
        let e = o.entry(node.to_string()).or_insert(us as f64);
        *e += OVERHEAD_WEIGHT * (us as f64 - *e);
    }

    /// The time to spare, µs, if `f` runs where `d` says and must end by
    /// `due` ([`weft_sched::slack_us`]): the time left, less the decision's
    /// queueing, transfer, cold start and state (the transfer at least what
    /// calls to it have taken beyond their runs, lately), less the execution
    /// time there at the function's admission
    /// percentile (the least of the node's p50, p90, p99 and max at or above
    /// it, from its heartbeats), or, before it ran there, what admission
    /// expects here, or the decision's estimate. Negative: `d.node` is not
    /// expected to meet the deadline.
    pub(crate) fn slack_us(&self, f: &Function, d: &Decision, due: Instant) -> i64 {
        let left = due.saturating_duration_since(Instant::now()).as_micros();
        let at = f.slo().admission.fraction();
        let rank = [0.5, 0.9, 0.99].iter().take_while(|p| at > **p).count();
        let profiled = self
            .profiles
            .lock()
            .get(&d.node)
            .and_then(|fs| fs.get(f.name()))
            .map(|p| p[rank]);
        let exec = profiled
            .or_else(|| f.expected_us())
            .unwrap_or(d.breakdown.exec_us);
        // The round trip as calls to it have seen it, when worse than the
        // decision's (heartbeats') estimate.
        let seen = self.overhead.lock().get(&d.node).map_or(0, |us| *us as u64);
        weft_sched::slack_us(
            u64::try_from(left).unwrap_or(u64::MAX),
            &d.breakdown,
            exec,
            seen,
        )
    }

    /// The decision, and every node ruled out and why.
    pub(crate) fn explain(
        &self,
        f: &Function,
        bytes: u64,
        key: Option<&str>,
        exclude: &BTreeSet<String>,
        local: &Local,
    ) -> (Result<Decision, PlaceError>, Vec<Excluded>) {
        let req = self.request(f, bytes, key, exclude);
        let ix = self.index.read();
        let decision = weft_sched::place_in(&ix, &req, Some(local));
        let excluded = weft_sched::exclusions(&ix, &req, Some(local)).unwrap_or_default();
        (decision, excluded)
    }

    /// `key`: the invocation's state key, which places an actor's.
    fn request(
        &self,
        f: &Function,
        bytes: u64,
        key: Option<&str>,
        exclude: &BTreeSet<String>,
    ) -> Request {
        Request {
            function: f.name().to_string(),
            origin: self.local.clone(),
            bytes_in: bytes,
            bytes_out: bytes,
            requirements: f.requirements().clone(),
            exclude: exclude.clone(),
            context_privacy: Privacy::None,
            state: f.state().map(|s| {
                let (bytes, trips) = f.state_moved();
                StateUse {
                    home: matches!(s.model, StateModel::External | StateModel::Edge)
                        .then(|| s.shared_home().map(str::to_string))
                        .flatten(),
                    key: (s.model == StateModel::Function)
                        .then(|| key.map(str::to_string))
                        .flatten(),
                    bytes,
                    trips,
                }
            }),
        }
    }
}
