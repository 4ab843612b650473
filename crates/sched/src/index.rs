//! The view compiled for placement: an [`Index`].
//!
//! A [`View`] is what a test, a golden file or the simulator writes: names,
//! maps and sets. A decision over 1,000 nodes that walked those would hash
//! and compare strings at every node. The index interns every name once —
//! nodes, functions, `(key, value)` labels, sites, stores — and keeps what a
//! decision reads per node in dense rows and per-function bit sets and
//! tables, so the scan walks arrays. A node keeps one index and updates one
//! row per heartbeat ([`Index::upsert`]); [`crate::place`] builds one for
//! each call from a `View`. Both decide with the same code
//! ([`crate::place_in`]), so the golden files replay the live path.

use crate::exec::Estimate;
use crate::model::{NodeView, Tier, View};
use std::collections::HashMap;
use std::sync::Arc;

/// A set of small integers (node or function indices), one bit each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Bits(Vec<u64>);

impl Bits {
    #[inline]
    pub(crate) fn get(&self, i: usize) -> bool {
        self.0.get(i / 64).is_some_and(|w| w >> (i % 64) & 1 == 1)
    }

    pub(crate) fn set(&mut self, i: usize, on: bool) {
        let w = i / 64;
        if w >= self.0.len() {
            if !on {
                return;
            }
            self.0.resize(w + 1, 0);
        }
        if on {
            self.0[w] |= 1 << (i % 64);
        } else {
            self.0[w] &= !(1 << (i % 64));
        }
    }

    /// The members, ascending.
    pub(crate) fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().enumerate().flat_map(|(w, &word)| {
            let mut rest = word;
            std::iter::from_fn(move || {
                if rest == 0 {
                    return None;
                }
                let b = rest.trailing_zeros() as usize;
                rest &= rest - 1;
                Some(w * 64 + b)
            })
        })
    }
}

/// Names to dense ids, in order of first sight.
#[derive(Debug, Clone, Default)]
pub(crate) struct Interner<K> {
    ids: HashMap<K, u32>,
    len: u32,
}

impl<K: std::hash::Hash + Eq + Clone> Interner<K> {
    pub(crate) fn get<Q>(&self, k: &Q) -> Option<u32>
    where
        K: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        self.ids.get(k).copied()
    }

    pub(crate) fn intern(&mut self, k: &K) -> u32 {
        if let Some(&id) = self.ids.get(k) {
            return id;
        }
        let id = self.len;
        self.ids.insert(k.clone(), id);
        self.len += 1;
        id
    }
}

/// What a decision reads of one node, per node.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) tier: Tier,
    pub(crate) up: bool,
    pub(crate) slots: u32,
    pub(crate) inflight: u32,
    pub(crate) queued: u32,
    pub(crate) rtt_us: Option<u64>,
    pub(crate) bandwidth_bps: Option<u64>,
    pub(crate) cost: f64,
    pub(crate) energy: f64,
    /// The id of its `site` label's value.
    pub(crate) site: Option<u32>,
    /// An MQTT broker is configured there.
    pub(crate) broker: bool,
    /// Its topic patterns, by id of the distinct set.
    pub(crate) topics: u32,
    // What the row set in the per-id tables, so an update can clear it
    // (shared: an index is cloned by the simulator's every client, and
    // these change only at a heartbeat).
    labels: Arc<[u32]>,
    stores: Arc<[u32]>,
    warm: Arc<[u32]>,
    have: Arc<[u32]>,
    pub(crate) artifacts_known: bool,
}

/// Every learned time of an index: per function, by node; and per node,
/// the functions with one. An index and its clones share it until one of
/// them changes it ([`Index::share_learned`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct Learned {
    pub(crate) by_function: Vec<ExecRow>,
    by_node: Vec<Vec<u32>>,
}

impl Learned {
    /// Sets the time of function `f` on node `i`.
    fn set(&mut self, i: usize, f: usize, us: Option<u64>) {
        let had = self.by_function[f].set(i, us);
        if self.by_node.len() <= i {
            self.by_node.resize_with(i + 1, Vec::new);
        }
        let list = &mut self.by_node[i];
        let id = f as u32;
        // The node's list changes only when the time comes or goes: a time
        // replaced (the common update) costs no search of it.
        match (had, us.is_some()) {
            (false, true) => list.push(id),
            (true, false) => {
                if let Some(p) = list.iter().position(|&x| x == id) {
                    list.swap_remove(p);
                }
            }
            _ => {}
        }
    }
}

/// Learned execution times of one function, µs, by node index
/// ([`NONE`] where none was learned), and their running sum.
#[derive(Debug, Clone, Default)]
pub(crate) struct ExecRow {
    pub(crate) by_node: Vec<u64>,
    pub(crate) sum_us: u128,
    pub(crate) count: u64,
}

/// No estimate for that node.
pub(crate) const NONE: u64 = u64::MAX;

impl ExecRow {
    #[inline]
    pub(crate) fn get(&self, node: usize) -> Option<u64> {
        self.by_node.get(node).copied().filter(|&us| us != NONE)
    }

    /// Sets `node`'s time; returns whether it had one before.
    fn set(&mut self, node: usize, us: Option<u64>) -> bool {
        if node >= self.by_node.len() {
            if us.is_none() {
                return false;
            }
            self.by_node.resize(node + 1, NONE);
        }
        let old = std::mem::replace(&mut self.by_node[node], us.unwrap_or(NONE));
        if old != NONE {
            self.sum_us -= u128::from(old);
            self.count -= 1;
        }
        if let Some(us) = us {
            self.sum_us += u128::from(us);
            self.count += 1;
        }
        old != NONE
    }
}

/// The nodes of a [`View`], compiled for placement; see the module docs.
///
/// ```
/// use weft_sched::{Index, NodeView, Request, Tier, View, place_in};
///
/// let view = View {
///     local: "edge-1".into(),
///     nodes: vec![NodeView::new("edge-1", Tier::Edge, 4), NodeView::new("cloud-1", Tier::Cloud, 64)],
///     ..View::default()
/// };
/// let mut index = Index::new(&view);
/// // A heartbeat: cloud-1 is warm for `resize` now.
/// index.upsert(&NodeView::new("cloud-1", Tier::Cloud, 64).warm("resize"));
/// let d = place_in(&index, &Request::new("resize", "edge-1"), None).unwrap();
/// assert_eq!(d.node, "edge-1"); // idle and eligible: local
/// ```
#[derive(Debug, Clone, Default)]
pub struct Index {
    pub(crate) local: Option<usize>,
    pub(crate) local_name: String,
    pub(crate) names: Vec<String>,
    pub(crate) by_name: HashMap<String, usize>,
    pub(crate) rows: Vec<Row>,
    pub(crate) functions: Interner<String>,
    /// Per function: the nodes where it is warm.
    pub(crate) warm: Vec<Bits>,
    /// Per function: the nodes whose artifact list (when known) holds it.
    pub(crate) have: Vec<Bits>,
    /// Learned times.
    pub(crate) exec: Arc<Learned>,
    /// `(key, value)` labels; per label: the nodes carrying it.
    pub(crate) labels: Interner<(String, String)>,
    pub(crate) label_nodes: Vec<Bits>,
    /// Values of the `site` label.
    pub(crate) sites: Interner<String>,
    /// Store labels; per store: the nodes serving it, and their round trip
    /// to it (µs by node; [`NONE`]: not measured, taken as 0).
    pub(crate) stores: Interner<String>,
    pub(crate) store_nodes: Vec<Bits>,
    pub(crate) store_rtt: Vec<Vec<u64>>,
    /// Distinct sets of topic patterns nodes provide.
    pub(crate) topic_sets: Vec<Vec<String>>,
}

/// The topic patterns of a node that does not restrict them: every topic.
pub const ALL_TOPICS: &str = ">";

impl Index {
    /// The index of `view`: every node (the first of a name, if a name
    /// repeats) and every learned time.
    pub fn new(view: &View) -> Index {
        let mut ix = Index {
            local_name: view.local.clone(),
            ..Index::default()
        };
        for n in &view.nodes {
            if !ix.by_name.contains_key(&n.name) {
                ix.upsert(n);
            }
        }
        for (function, per_node) in view.exec.functions() {
            for (node, e) in per_node.iter() {
                ix.set_estimate(function, node, Some(*e));
            }
        }
        ix
    }

    /// The deciding node's name (`View::local`).
    pub fn local(&self) -> &str {
        &self.local_name
    }

    /// Sets the deciding node's name; its row, if present, becomes local.
    pub fn set_local(&mut self, name: &str) {
        self.local_name = name.to_string();
        self.local = self.by_name.get(name).copied();
    }

    /// Nodes in the index.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// No node at all.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Whether a node of that name is in the index.
    pub fn contains(&self, node: &str) -> bool {
        self.by_name.contains_key(node)
    }

    fn function_id(&mut self, f: &str) -> usize {
        let id = match self.functions.get(f) {
            Some(id) => id,
            None => self.functions.intern(&f.to_string()),
        } as usize;
        if id >= self.warm.len() {
            self.warm.resize(id + 1, Bits::default());
            self.have.resize(id + 1, Bits::default());
            Arc::make_mut(&mut self.exec)
                .by_function
                .resize(id + 1, ExecRow::default());
        }
        id
    }

    /// Adds a node, or replaces everything known of it but its learned
    /// times (those come with [`Index::set_estimate`]); its place in the
    /// index stays. Returns its position. This is the update of a heartbeat.
    pub fn upsert(&mut self, n: &NodeView) -> usize {
        let i = match self.by_name.get(&n.name) {
            Some(&i) => {
                self.clear(i);
                i
            }
            None => {
                let i = self.rows.len();
                self.names.push(n.name.clone());
                self.by_name.insert(n.name.clone(), i);
                self.rows.push(Row {
                    tier: n.tier,
                    up: false,
                    slots: 0,
                    inflight: 0,
                    queued: 0,
                    rtt_us: None,
                    bandwidth_bps: None,
                    cost: 1.0,
                    energy: 1.0,
                    site: None,
                    broker: false,
                    topics: 0,
                    labels: Arc::default(),
                    stores: Arc::default(),
                    warm: Arc::default(),
                    have: Arc::default(),
                    artifacts_known: false,
                });
                if n.name == self.local_name {
                    self.local = Some(i);
                }
                i
            }
        };
        let mut labels = Vec::with_capacity(n.labels.len());
        for (k, v) in &n.labels {
            let id = self.labels.intern(&(k.clone(), v.clone())) as usize;
            if id >= self.label_nodes.len() {
                self.label_nodes.resize(id + 1, Bits::default());
            }
            self.label_nodes[id].set(i, true);
            labels.push(id as u32);
        }
        let mut stores = Vec::with_capacity(n.stores.len());
        for s in &n.stores {
            let id = self.stores.intern(s) as usize;
            if id >= self.store_nodes.len() {
                self.store_nodes.resize(id + 1, Bits::default());
                self.store_rtt.resize(id + 1, Vec::new());
            }
            self.store_nodes[id].set(i, true);
            if let Some(&us) = n.store_rtt_us.get(s) {
                let by_node = &mut self.store_rtt[id];
                if by_node.len() <= i {
                    by_node.resize(i + 1, NONE);
                }
                by_node[i] = us.min(NONE - 1);
            }
            stores.push(id as u32);
        }
        let mut warm = Vec::with_capacity(n.warm.len());
        for f in &n.warm {
            let id = self.function_id(f);
            self.warm[id].set(i, true);
            warm.push(id as u32);
        }
        let mut have = Vec::new();
        for f in n.has_artifact.iter().flatten() {
            let id = self.function_id(f);
            self.have[id].set(i, true);
            have.push(id as u32);
        }
        let site = n.site().map(|s| self.sites.intern(&s.to_string()));
        let topics = self.topic_set(&n.topics);
        let row = &mut self.rows[i];
        row.tier = n.tier;
        row.up = n.up;
        row.slots = n.slots;
        row.inflight = n.inflight;
        row.queued = n.queued;
        row.rtt_us = n.rtt_us;
        row.bandwidth_bps = n.bandwidth_bps;
        row.cost = n.cost;
        row.energy = n.energy;
        row.site = site;
        row.broker = n.broker;
        row.topics = topics;
        row.labels = labels.into();
        row.stores = stores.into();
        row.warm = warm.into();
        row.have = have.into();
        row.artifacts_known = n.has_artifact.is_some();
        i
    }

    /// The id of a set of topic patterns (the empty set: every topic).
    fn topic_set(&mut self, patterns: &[String]) -> u32 {
        let mut set: Vec<String> = patterns.to_vec();
        if set.is_empty() {
            set.push(ALL_TOPICS.to_string());
        }
        set.sort();
        set.dedup();
        match self.topic_sets.iter().position(|s| *s == set) {
            Some(p) => p as u32,
            None => {
                self.topic_sets.push(set);
                (self.topic_sets.len() - 1) as u32
            }
        }
    }

    /// Clears what row `i` set in the per-id tables.
    fn clear(&mut self, i: usize) {
        let row = &mut self.rows[i];
        for &id in std::mem::take(&mut row.labels).iter() {
            self.label_nodes[id as usize].set(i, false);
        }
        for &id in std::mem::take(&mut row.stores).iter() {
            self.store_nodes[id as usize].set(i, false);
            if let Some(us) = self.store_rtt[id as usize].get_mut(i) {
                *us = NONE;
            }
        }
        for &id in std::mem::take(&mut row.warm).iter() {
            self.warm[id as usize].set(i, false);
        }
        for &id in std::mem::take(&mut row.have).iter() {
            self.have[id as usize].set(i, false);
        }
    }

    /// Node `i`'s round trip to store `id`, µs (0 when not measured).
    #[inline]
    pub(crate) fn store_rtt(&self, id: usize, i: usize) -> u64 {
        self.store_rtt
            .get(id)
            .and_then(|by| by.get(i))
            .copied()
            .filter(|&us| us != NONE)
            .unwrap_or(0)
    }

    /// Sets the learned time of `function` on `node` (a node not in the
    /// index is ignored); `None` forgets it.
    pub fn set_estimate(&mut self, function: &str, node: &str, e: Option<Estimate>) {
        let Some(&i) = self.by_name.get(node) else {
            return;
        };
        if e.is_none() && self.functions.get(function).is_none() {
            return;
        }
        let f = self.function_id(function);
        self.set_estimate_at(i, f, e);
    }

    /// `node`'s row, for the updates by position; `None` when the index
    /// does not hold it.
    pub fn row_of(&self, node: &str) -> Option<usize> {
        self.by_name.get(node).copied()
    }

    /// `function`'s id, for the updates by position; `None` when the index
    /// has never heard of it.
    pub fn function_of(&self, function: &str) -> Option<usize> {
        self.functions.get(function).map(|id| id as usize)
    }

    /// [`Index::set_estimate`] by row and function id (from
    /// [`Index::row_of`] and [`Index::function_of`] of this index or of one
    /// it was cloned from): no lookup by name, for a caller that updates
    /// many indices of the same nodes (the simulator's clients). Panics on
    /// a row or id the index does not have.
    pub fn set_estimate_at(&mut self, i: usize, f: usize, e: Option<Estimate>) {
        assert!(i < self.rows.len(), "no row {i}");
        Arc::make_mut(&mut self.exec).set(i, f, e.map(|e| e.micros()));
    }

    /// Takes `other`'s learned times in place of this index's own, without
    /// a copy: the two share them until either changes them. For a caller
    /// that keeps many indices of the same nodes and functions, all
    /// learning the same times (the simulator's clients, at each beat).
    /// `other` must be this index or a clone of it, with the same rows and
    /// function ids; panics when their numbers differ.
    pub fn share_learned(&mut self, other: &Index) {
        assert!(
            self.rows.len() == other.rows.len() && self.exec_functions() == other.exec_functions(),
            "share_learned: the indices differ in nodes or functions"
        );
        self.exec = Arc::clone(&other.exec);
    }

    fn exec_functions(&self) -> usize {
        self.exec.by_function.len()
    }

    /// Replaces every learned time of `node` with `estimates` (what its
    /// latest heartbeat says).
    pub fn set_estimates<'a>(
        &mut self,
        node: &str,
        estimates: impl IntoIterator<Item = (&'a str, Estimate)>,
    ) {
        let Some(&i) = self.by_name.get(node) else {
            return;
        };
        let learned = Arc::make_mut(&mut self.exec);
        if let Some(list) = learned.by_node.get_mut(i) {
            for id in std::mem::take(list) {
                learned.by_function[id as usize].set(i, None);
            }
        }
        for (f, e) in estimates {
            self.set_estimate(f, node, Some(e));
        }
    }

    /// Marks a node up or down (heartbeats stopped); unknown names are
    /// ignored.
    pub fn set_up(&mut self, node: &str, up: bool) {
        if let Some(&i) = self.by_name.get(node) {
            self.rows[i].up = up;
        }
    }

    /// Adds to a node's running count until its next update: work this node
    /// has just sent there, which its last heartbeat could not count.
    pub fn add_inflight(&mut self, node: &str, n: u32) {
        if let Some(&i) = self.by_name.get(node) {
            let r = &mut self.rows[i];
            r.inflight = r.inflight.saturating_add(n);
        }
    }

    /// Sets the round trip (µs) and bandwidth (bytes/s) from the deciding
    /// node to `node`, as a fresh measure of the link; unknown names are
    /// ignored.
    pub fn set_link(&mut self, node: &str, rtt_us: Option<u64>, bandwidth_bps: Option<u64>) {
        if let Some(&i) = self.by_name.get(node) {
            let r = &mut self.rows[i];
            (r.rtt_us, r.bandwidth_bps) = (rtt_us, bandwidth_bps);
        }
    }

    /// Takes from a node's running count until its next update: work this
    /// node sent there has been answered (saturating at 0).
    pub fn sub_inflight(&mut self, node: &str, n: u32) {
        if let Some(&i) = self.by_name.get(node) {
            let r = &mut self.rows[i];
            r.inflight = r.inflight.saturating_sub(n);
        }
    }

    /// Sets a node's running and waiting counts (a heartbeat that only
    /// reports load, or a simulator's sample of it); unknown names are
    /// ignored.
    pub fn set_load(&mut self, node: &str, inflight: u32, queued: u32) {
        if let Some(&i) = self.by_name.get(node) {
            self.set_load_at(i, inflight, queued);
        }
    }

    /// [`Index::set_load`] by row (from [`Index::row_of`]). Panics on a row
    /// the index does not have.
    pub fn set_load_at(&mut self, i: usize, inflight: u32, queued: u32) {
        let r = &mut self.rows[i];
        (r.inflight, r.queued) = (inflight, queued);
    }

    /// Whether the index holds the node as up.
    pub fn is_up(&self, node: &str) -> Option<bool> {
        self.by_name.get(node).map(|&i| self.rows[i].up)
    }

    /// A node's running count as the index holds it.
    pub fn inflight(&self, node: &str) -> Option<u32> {
        self.by_name.get(node).map(|&i| self.rows[i].inflight)
    }

    /// Names of the nodes, in index order.
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A learned time of `us`, from one run.
    fn e(us: f64) -> Option<Estimate> {
        Some(Estimate {
            mean_us: us,
            samples: 1,
        })
    }

    #[test]
    fn bits() {
        let mut b = Bits::default();
        assert!(!b.get(1000));
        b.set(3, true);
        b.set(130, true);
        b.set(7, false);
        assert!(b.get(3) && b.get(130) && !b.get(4));
        assert_eq!(b.iter().collect::<Vec<_>>(), vec![3, 130]);
        b.set(3, false);
        assert_eq!(b.iter().collect::<Vec<_>>(), vec![130]);
    }

    #[test]
    fn an_update_replaces_what_the_node_had() {
        let view = View {
            local: "a".into(),
            nodes: vec![
                NodeView::new("a", Tier::Edge, 4)
                    .label("site", "x")
                    .warm("f")
                    .store("cache"),
                NodeView::new("b", Tier::Cloud, 8).warm("g"),
            ],
            ..View::default()
        };
        let mut ix = Index::new(&view);
        let f = ix.functions.get("f").unwrap() as usize;
        let cache = ix.stores.get("cache").unwrap() as usize;
        assert!(ix.warm[f].get(0) && ix.store_nodes[cache].get(0));
        ix.upsert(&NodeView::new("a", Tier::Edge, 4).warm("g"));
        let g = ix.functions.get("g").unwrap() as usize;
        assert!(!ix.warm[f].get(0) && ix.warm[g].get(0) && ix.warm[g].get(1));
        assert!(!ix.store_nodes[cache].get(0));
        assert_eq!(ix.rows[0].site, None);
        assert_eq!(ix.local, Some(0));
        ix.add_inflight("b", 2);
        assert_eq!(ix.inflight("b"), Some(2));
        ix.sub_inflight("b", 1);
        assert_eq!(ix.inflight("b"), Some(1));
        ix.sub_inflight("b", 5);
        assert_eq!(ix.inflight("b"), Some(0));
        ix.set_link("b", Some(7), Some(9));
        assert_eq!(
            (ix.rows[1].rtt_us, ix.rows[1].bandwidth_bps),
            (Some(7), Some(9))
        );
        ix.set_load("b", 5, 3);
        assert_eq!((ix.rows[1].inflight, ix.rows[1].queued), (5, 3));
        ix.upsert(&NodeView::new("b", Tier::Cloud, 8));
        assert_eq!(ix.inflight("b"), Some(0));
    }

    #[test]
    fn updates_by_position_are_the_updates_by_name() {
        let view = View {
            local: "a".into(),
            nodes: vec![
                NodeView::new("a", Tier::Edge, 4).warm("f"),
                NodeView::new("b", Tier::Cloud, 8).warm("g"),
            ],
            ..View::default()
        };
        let (mut by_name, mut by_position) = (Index::new(&view), Index::new(&view));
        by_name.set_load("b", 3, 2);
        by_name.set_estimate("g", "b", e(250.0));
        by_name.set_estimate("f", "b", e(90.0));
        by_name.set_estimate("f", "b", None);
        let (b, f, g) = (
            by_position.row_of("b").unwrap(),
            by_position.function_of("f").unwrap(),
            by_position.function_of("g").unwrap(),
        );
        assert_eq!(
            (by_position.row_of("nobody"), by_position.function_of("h")),
            (None, None)
        );
        by_position.set_load_at(b, 3, 2);
        by_position.set_estimate_at(b, g, e(250.0));
        by_position.set_estimate_at(b, f, e(90.0));
        by_position.set_estimate_at(b, f, None);
        assert_eq!(
            (by_position.rows[b].inflight, by_position.rows[b].queued),
            (3, 2)
        );
        assert_eq!(by_position.exec.by_node[b], by_name.exec.by_node[b]);
        for id in [f, g] {
            assert_eq!(
                by_position.exec.by_function[id].get(b),
                by_name.exec.by_function[id].get(b),
                "{id}"
            );
        }
    }

    #[test]
    fn clones_share_learned_times_until_one_changes_them() {
        let view = View {
            local: "a".into(),
            nodes: vec![
                NodeView::new("a", Tier::Edge, 1).warm("f"),
                NodeView::new("b", Tier::Edge, 1),
            ],
            ..View::default()
        };
        let mut told = Index::new(&view);
        let mut client = told.clone();
        client.set_local("b");
        told.set_estimate("f", "b", e(700.0));
        assert_eq!(client.exec.by_function[0].get(1), None);
        client.share_learned(&told);
        assert!(Arc::ptr_eq(&client.exec, &told.exec));
        assert_eq!(client.exec.by_function[0].get(1), Some(700));
        // A change to one leaves the other as it was.
        told.set_estimate("f", "b", e(900.0));
        client.set_estimate("f", "a", e(5.0));
        assert_eq!(told.exec.by_function[0].get(1), Some(900));
        assert_eq!(told.exec.by_function[0].get(0), None);
        assert_eq!(client.exec.by_function[0].get(1), Some(700));
        // Indices of other nodes cannot share.
        let other = Index::new(&View {
            nodes: vec![NodeView::new("a", Tier::Edge, 1)],
            ..View::default()
        });
        let shared = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            client.share_learned(&other)
        }));
        assert!(shared.is_err());
    }

    #[test]
    fn estimates_keep_a_running_sum() {
        let mut ix = Index::new(&View {
            local: "a".into(),
            nodes: vec![
                NodeView::new("a", Tier::Edge, 1),
                NodeView::new("b", Tier::Edge, 1),
            ],
            ..View::default()
        });
        ix.set_estimate("f", "a", e(1_000.4));
        ix.set_estimate("f", "b", e(2_000.6));
        ix.set_estimate("f", "a", e(3_000.0));
        let f = ix.functions.get("f").unwrap() as usize;
        assert_eq!(
            (ix.exec.by_function[f].sum_us, ix.exec.by_function[f].count),
            (5_001, 2)
        );
        ix.set_estimate("f", "b", None);
        assert_eq!(
            (ix.exec.by_function[f].sum_us, ix.exec.by_function[f].count),
            (3_000, 1)
        );
        ix.set_estimate("f", "nobody", e(5.0));
        assert_eq!(ix.exec.by_function[f].count, 1);
    }
}
