//! The placement policy: filter, the local fast path, then least expected
//! completion. See the crate documentation for the formula.

use crate::decision::{Constraint, Cost, Decision, PlaceError, Reason, Rejections};
use crate::exec::PerNode;
use crate::model::{NodeView, Privacy, Request, View};
use std::cell::OnceCell;
use std::cmp::Ordering;

/// Round trip assumed to a node whose `rtt_us` is unknown, µs.
pub const DEFAULT_RTT_US: u64 = 50_000;
/// Bandwidth assumed to a node whose `bandwidth_bps` is unknown, bytes/s
/// (10 MB/s).
pub const DEFAULT_BANDWIDTH_BPS: u64 = 10_000_000;
/// Execution time assumed for a function no node has run yet, µs.
pub const DEFAULT_EXEC_US: u64 = 5_000;
/// Cold start (load the artifact, pre-instantiate) on a node where the
/// function is not warm, µs. `bench/RESULTS.md` measures 0.1–0.25 ms from the
/// on-disk artifact; the prior is rounded up for a loaded node.
pub const COLD_START_US: u64 = 1_000;
/// Fetching the artifact to a cold node known to lack it, µs: its size is not
/// in the view, so a constant (a few MB over a fast link plus a round trip).
pub const ARTIFACT_FETCH_US: u64 = 20_000;
/// Distance charged for a `near` store that no up node serves, µs.
pub const UNKNOWN_STORE_US: u64 = 50_000;

/// Largest value a float term may contribute, µs (about 31 years): keeps
/// sums far from overflow.
const MAX_TERM_US: f64 = 1e15;

/// Chooses the node that runs `req`. See the crate documentation.
pub fn place(view: &View, req: &Request) -> Result<Decision, PlaceError> {
    let origin = view
        .node(&req.origin)
        .ok_or_else(|| PlaceError::UnknownOrigin(req.origin.clone()))?;
    let filter = Filter::new(req, origin);
    let here = req.origin == view.local;
    let local = if here {
        Some(origin)
    } else {
        view.node(&view.local)
    };

    let reason = if here {
        match filter.check(origin) {
            Ok(()) if origin.inflight < origin.slots && origin.queued == 0 => {
                let scorer = Scorer::new(view, req, local, NearMode::Lazy);
                let s = scorer.cost(origin);
                return Ok(Decision {
                    node: origin.name.clone(),
                    local: true,
                    reason: Reason::Local,
                    expected_us: s.total,
                    breakdown: s.cost,
                    considered: 0,
                    rejected: Rejections::default(),
                    runner_up: None,
                    target_met: scorer.target_met(s.latency_us),
                });
            }
            Ok(()) => Reason::LocalOverloaded {
                inflight: origin.inflight,
                queued: origin.queued,
                slots: origin.slots,
            },
            Err(constraint) => Reason::LocalIneligible { constraint },
        }
    } else {
        Reason::Best
    };

    let scorer = Scorer::new(view, req, local, NearMode::Eager);
    let mut rejected = Rejections::default();
    let mut considered = 0u32;
    let mut best: Option<(&NodeView, Scored)> = None;
    let mut second: Option<(&NodeView, u64)> = None;
    for node in &view.nodes {
        if let Err(c) = filter.check(node) {
            rejected.add(c);
            continue;
        }
        considered = considered.saturating_add(1);
        // Every term is non-negative and the over-target penalty grows with
        // the time terms, so once a node's first terms exceed the runner-up
        // it can be neither best nor runner-up: stop scoring it. Terms come
        // cheapest first (the warm-set search, the dearest, last). This only
        // saves work; the result is the one full scoring gives.
        let limit = second.map_or(u64::MAX, |(_, us)| us);
        if scorer.bound(scorer.rtt(node), 0) > limit {
            continue;
        }
        let transfer_us = scorer.transfer(node);
        let near_us = scorer.near(node);
        let reach_us = transfer_us.saturating_add(near_us);
        if scorer.bound(reach_us, 0) > limit {
            continue;
        }
        let exec_us = scorer.exec(node);
        let queue_us = queue(node, exec_us);
        let price_us = scorer.price(node, exec_us);
        let time_us = reach_us.saturating_add(exec_us).saturating_add(queue_us);
        if scorer.bound(time_us, price_us) > limit {
            continue;
        }
        let scored = scorer.assemble(Terms {
            queue_us,
            exec_us,
            transfer_us,
            cold_us: scorer.cold(node),
            near_us,
            price_us,
        });
        let total = scored.total;
        match best {
            Some((b, b_scored)) if !better(total, node, b_scored.total, b) => {
                if second.is_none_or(|(s, s_total)| better(total, node, s_total, s)) {
                    second = Some((node, total));
                }
            }
            _ => {
                second = best.map(|(b, b_scored)| (b, b_scored.total));
                best = Some((node, scored));
            }
        }
    }
    let Some((node, scored)) = best else {
        return Err(PlaceError::NoEligibleNode {
            function: req.function.clone(),
            rejected,
        });
    };
    Ok(Decision {
        node: node.name.clone(),
        local: scorer.is_local(node),
        reason,
        expected_us: scored.total,
        breakdown: scored.cost,
        considered,
        rejected,
        runner_up: second.map(|(n, us)| (n.name.clone(), us)),
        target_met: scorer.target_met(scored.latency_us),
    })
}

/// `(a_us, a)` ranks before `(b_us, b)`: less expected time, then the
/// smaller name. Names are unique, so this is a total order on the view.
fn better(a_us: u64, a: &NodeView, b_us: u64, b: &NodeView) -> bool {
    match a_us.cmp(&b_us) {
        Ordering::Less => true,
        Ordering::Greater => false,
        Ordering::Equal => a.name < b.name,
    }
}

/// The hard constraints, with what they need from the origin resolved once.
struct Filter<'a> {
    req: &'a Request,
    origin: &'a NodeView,
    origin_site: Option<&'a str>,
}

impl<'a> Filter<'a> {
    fn new(req: &'a Request, origin: &'a NodeView) -> Filter<'a> {
        Filter {
            req,
            origin,
            origin_site: origin.site(),
        }
    }

    /// The first constraint `node` fails, in [`Constraint::ALL`] order.
    #[inline]
    fn check(&self, node: &NodeView) -> Result<(), Constraint> {
        let r = &self.req.requirements;
        if !node.up {
            return Err(Constraint::Down);
        }
        if !self.req.exclude.is_empty() && self.req.exclude.contains(node.name.as_str()) {
            return Err(Constraint::Excluded);
        }
        if node.slots == 0 {
            return Err(Constraint::NoCapacity);
        }
        if !r.tiers.is_empty() && !r.tiers.contains(&node.tier) {
            return Err(Constraint::Tier);
        }
        if !r
            .labels
            .iter()
            .all(|(k, v)| node.labels.get(k).is_some_and(|have| have == v))
        {
            return Err(Constraint::Labels);
        }
        let private = match r.privacy {
            Privacy::None => true,
            Privacy::Site => match self.origin_site {
                Some(site) => node.site() == Some(site),
                None => node.name == self.origin.name,
            },
            Privacy::Tier => node.tier == self.origin.tier,
        };
        if !private {
            return Err(Constraint::Privacy);
        }
        Ok(())
    }
}

#[derive(Clone, Copy, PartialEq)]
enum NearMode {
    /// Find the nearest node serving each `near` store before scoring (the
    /// full scan scores every node anyway).
    Eager,
    /// Only if the scored node lacks one (the fast path scores one node).
    Lazy,
}

/// The terms, with everything that does not depend on the node resolved
/// once per call.
struct Scorer<'a> {
    view: &'a View,
    req: &'a Request,
    /// The deciding node, if it is in the view; recognised by address (names
    /// are unique, so this is the node named `view.local`).
    local: Option<&'a NodeView>,
    per_node: Option<&'a PerNode>,
    /// Execution time for a node without its own estimate; computed on first
    /// need (the fast path usually has an estimate).
    fallback_exec_us: OnceCell<u64>,
    /// `(bytes_in + bytes_out) × 10⁶`.
    bytes_e6: u128,
    /// Per `near` store: round trip to the nearest up node serving it.
    /// Empty in lazy mode.
    nearest: Vec<u64>,
    target_us: Option<u64>,
}

impl<'a> Scorer<'a> {
    fn new(
        view: &'a View,
        req: &'a Request,
        local: Option<&'a NodeView>,
        near: NearMode,
    ) -> Scorer<'a> {
        let nearest = match near {
            NearMode::Eager => req
                .requirements
                .near
                .iter()
                .map(|s| nearest_serving(view, local, s))
                .collect(),
            NearMode::Lazy => Vec::new(),
        };
        Scorer {
            view,
            req,
            local,
            per_node: view.exec.function(&req.function),
            fallback_exec_us: OnceCell::new(),
            bytes_e6: (u128::from(req.bytes_in) + u128::from(req.bytes_out)) * 1_000_000,
            nearest,
            target_us: req.requirements.latency_ms.map(|ms| u64::from(ms) * 1_000),
        }
    }

    #[inline]
    fn is_local(&self, node: &NodeView) -> bool {
        self.local.is_some_and(|l| std::ptr::eq(l, node))
    }

    /// Round trip from the deciding node: 0 for itself, whatever the view
    /// says.
    #[inline]
    fn rtt(&self, node: &NodeView) -> u64 {
        if self.is_local(node) {
            0
        } else {
            node.rtt_us.unwrap_or(DEFAULT_RTT_US)
        }
    }

    /// 0 on the deciding node, which holds the request; elsewhere one round
    /// trip plus the bytes both ways at the link's bandwidth.
    #[inline]
    fn transfer(&self, node: &NodeView) -> u64 {
        if self.is_local(node) {
            return 0;
        }
        let bw = node.bandwidth_bps.unwrap_or(DEFAULT_BANDWIDTH_BPS).max(1);
        // A 64-bit division unless the payload is beyond 18 TB.
        let move_us = match u64::try_from(self.bytes_e6) {
            Ok(b) => b / bw,
            Err(_) => u64::try_from(self.bytes_e6 / u128::from(bw)).unwrap_or(u64::MAX),
        };
        node.rtt_us
            .unwrap_or(DEFAULT_RTT_US)
            .saturating_add(move_us)
    }

    /// The learned time there, else the function's mean, else the prior.
    #[inline]
    fn exec(&self, node: &NodeView) -> u64 {
        match self.per_node.and_then(|p| p.get(&node.name)) {
            Some(e) => e.micros(),
            None => *self.fallback_exec_us.get_or_init(|| {
                self.per_node
                    .and_then(PerNode::mean_us)
                    .unwrap_or(DEFAULT_EXEC_US)
            }),
        }
    }

    /// Every term for one node.
    fn cost(&self, node: &NodeView) -> Scored {
        let exec_us = self.exec(node);
        self.assemble(Terms {
            queue_us: queue(node, exec_us),
            exec_us,
            transfer_us: self.transfer(node),
            cold_us: self.cold(node),
            near_us: self.near(node),
            price_us: self.price(node, exec_us),
        })
    }

    /// Cold start, and the artifact fetch if the node is known to lack it.
    #[inline]
    fn cold(&self, node: &NodeView) -> u64 {
        let function = self.req.function.as_str();
        if node.warm.contains(function) {
            0
        } else if node
            .has_artifact
            .as_ref()
            .is_some_and(|a| !a.contains(function))
        {
            COLD_START_US + ARTIFACT_FETCH_US
        } else {
            COLD_START_US
        }
    }

    /// Time spent reaching the `near` stores the node does not serve.
    #[inline]
    fn near(&self, node: &NodeView) -> u64 {
        let near = &self.req.requirements.near;
        if near.is_empty() {
            return 0;
        }
        let rtt = self.rtt(node);
        let mut near_us = 0u64;
        for (i, store) in near.iter().enumerate() {
            if node.stores.contains(store) {
                continue;
            }
            let nearest = match self.nearest.get(i) {
                Some(&n) => n,
                None => nearest_serving(self.view, self.local, store),
            };
            near_us = near_us.saturating_add(rtt.max(nearest));
        }
        near_us
    }

    /// Price and energy, weighted: not time, so they weigh against the
    /// latency target but do not count towards it.
    #[inline]
    fn price(&self, node: &NodeView, exec_us: u64) -> u64 {
        let r = &self.req.requirements;
        let mut us = 0u64;
        if r.cost_weight != 0.0 {
            us = us.saturating_add(to_us(r.cost_weight * node.cost * exec_us as f64));
        }
        if r.energy_weight != 0.0 {
            us = us.saturating_add(to_us(r.energy_weight * node.energy * exec_us as f64));
        }
        us
    }

    /// What a node whose time terms add up to at least `time_us` and whose
    /// price is `price_us` scores at least.
    #[inline]
    fn bound(&self, time_us: u64, price_us: u64) -> u64 {
        time_us
            .saturating_add(self.over_target(time_us))
            .saturating_add(price_us)
    }

    #[inline]
    fn over_target(&self, latency_us: u64) -> u64 {
        self.target_us
            .map_or(0, |target| latency_us.saturating_sub(target))
    }

    fn assemble(&self, t: Terms) -> Scored {
        let latency_us = t
            .queue_us
            .saturating_add(t.exec_us)
            .saturating_add(t.transfer_us)
            .saturating_add(t.cold_us)
            .saturating_add(t.near_us);
        let cost = Cost {
            queue_us: t.queue_us,
            exec_us: t.exec_us,
            transfer_us: t.transfer_us,
            cold_us: t.cold_us,
            penalty_us: t
                .near_us
                .saturating_add(self.over_target(latency_us))
                .saturating_add(t.price_us),
        };
        Scored {
            total: cost.total(),
            cost,
            latency_us,
        }
    }

    /// Whether a node expected to take `latency_us` meets the target.
    fn target_met(&self, latency_us: u64) -> Option<bool> {
        Some(latency_us <= self.target_us?)
    }
}

/// One node's terms, µs.
struct Terms {
    queue_us: u64,
    exec_us: u64,
    transfer_us: u64,
    cold_us: u64,
    near_us: u64,
    /// Weighted price and energy.
    price_us: u64,
}

/// One node's score.
#[derive(Clone, Copy)]
struct Scored {
    cost: Cost,
    /// `cost.total()`: what the nodes are ranked by.
    total: u64,
    /// The time terms only (queue, exec, transfer, cold, near), µs.
    latency_us: u64,
}

/// Waiting for a slot: the invocations ahead of this one beyond the free
/// slots, each holding a slot for one execution, `slots` at a time.
#[inline]
fn queue(node: &NodeView, exec_us: u64) -> u64 {
    let ahead = (u64::from(node.inflight) + u64::from(node.queued) + 1)
        .saturating_sub(u64::from(node.slots));
    if ahead == 0 {
        0
    } else {
        mul_div(exec_us, ahead, u64::from(node.slots))
    }
}

/// Round trip to the nearest up node serving `store` ([`UNKNOWN_STORE_US`]
/// if none does); the deciding node counts as 0. A node no nearer than the
/// nearest found so far is not searched.
fn nearest_serving(view: &View, local: Option<&NodeView>, store: &str) -> u64 {
    if local.is_some_and(|l| l.up && l.stores.contains(store)) {
        return 0;
    }
    let mut nearest = UNKNOWN_STORE_US;
    for n in &view.nodes {
        let rtt = n.rtt_us.unwrap_or(DEFAULT_RTT_US);
        if rtt < nearest
            && n.up
            && !local.is_some_and(|l| std::ptr::eq(l, n))
            && n.stores.contains(store)
        {
            nearest = rtt;
        }
    }
    nearest
}

/// `a * b / c`, floored, without overflow (saturating at `u64::MAX`).
fn mul_div(a: u64, b: u64, c: u64) -> u64 {
    let c = c.max(1);
    match a.checked_mul(b) {
        Some(ab) => ab / c,
        None => u64::try_from(u128::from(a) * u128::from(b) / u128::from(c)).unwrap_or(u64::MAX),
    }
}

/// A float term in whole µs, rounded half away from zero; negative or NaN
/// count as 0, anything above about 31 years as 31 years.
pub(crate) fn to_us(x: f64) -> u64 {
    if x.is_nan() || x <= 0.0 {
        0
    } else {
        x.min(MAX_TERM_US).round() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{NodeView, Requirements, Tier};
    use std::collections::BTreeSet;

    const MB: u64 = 1_000_000;

    /// Two sites of two edge nodes, a fog node, two cloud nodes; the
    /// deciding node is `a1`. Nothing warm, no learned times.
    fn continuum() -> View {
        View {
            local: "a1".into(),
            nodes: vec![
                NodeView::new("a1", Tier::Edge, 4)
                    .label("site", "a")
                    .label("arch", "x86_64")
                    .link(0, 1_000 * MB),
                NodeView::new("a2", Tier::Edge, 4)
                    .label("site", "a")
                    .label("arch", "aarch64")
                    .link(1_000, 100 * MB),
                NodeView::new("b1", Tier::Edge, 4)
                    .label("site", "b")
                    .label("arch", "x86_64")
                    .link(10_000, 20 * MB),
                NodeView::new("b2", Tier::Edge, 4)
                    .label("site", "b")
                    .label("arch", "aarch64")
                    .link(10_000, 20 * MB),
                NodeView::new("fog", Tier::Fog, 16).link(5_000, 50 * MB),
                NodeView::new("c1", Tier::Cloud, 64)
                    .label("arch", "x86_64")
                    .link(20_000, 25 * MB),
                NodeView::new("c2", Tier::Cloud, 64)
                    .label("arch", "aarch64")
                    .link(20_000, 25 * MB),
            ],
            ..View::default()
        }
    }

    fn node<'a>(v: &'a mut View, name: &str) -> &'a mut NodeView {
        v.nodes.iter_mut().find(|n| n.name == name).unwrap()
    }

    fn req(reqs: Requirements) -> Request {
        Request {
            requirements: reqs,
            ..Request::new("f", "a1")
        }
    }

    fn busy(v: &mut View, name: &str) {
        let n = node(v, name);
        n.inflight = n.slots;
        n.queued = 1;
    }

    /// 4/4 busy and 20 waiting: 21 rounds of waiting.
    fn swamped(v: &mut View, name: &str) {
        let n = node(v, name);
        n.inflight = n.slots;
        n.queued = 20;
    }

    #[test]
    fn local_fast_path() {
        let mut v = continuum();
        v.exec.observe("f", "a1", 3_000);
        node(&mut v, "a1").inflight = 3;
        let d = place(&v, &Request::new("f", "a1")).unwrap();
        assert_eq!(d.node, "a1");
        assert!(d.local);
        assert_eq!(d.reason, Reason::Local);
        assert_eq!(
            d.breakdown,
            Cost {
                exec_us: 3_000,
                cold_us: COLD_START_US,
                ..Cost::default()
            }
        );
        assert_eq!(d.expected_us, 4_000);
        // Not computed on the fast path.
        assert_eq!(
            (d.considered, d.rejected, d.runner_up),
            (0, Rejections::default(), None)
        );
        assert_eq!(d.target_met, None);
    }

    #[test]
    fn fast_path_even_when_a_remote_node_is_faster() {
        let mut v = continuum();
        v.exec.observe("f", "a1", 50_000);
        v.exec.observe("f", "a2", 1_000);
        let d = place(&v, &Request::new("f", "a1")).unwrap();
        assert_eq!((d.node.as_str(), d.reason), ("a1", Reason::Local));
    }

    #[test]
    fn queued_work_disables_the_fast_path() {
        let mut v = continuum();
        node(&mut v, "a1").queued = 1;
        let d = place(&v, &Request::new("f", "a1")).unwrap();
        assert_eq!(
            d.reason,
            Reason::LocalOverloaded {
                inflight: 0,
                queued: 1,
                slots: 4
            }
        );
        // 0 + 1 + 1 − 4 < 0: no wait, and no transfer: still the best.
        assert_eq!(d.node, "a1");
        assert_eq!(d.breakdown.queue_us, 0);
        assert_eq!(d.considered, 7);
        assert_eq!(
            d.runner_up,
            Some(("a2".into(), 1_000 + DEFAULT_EXEC_US + COLD_START_US))
        );
    }

    #[test]
    fn overloaded_local_spills_to_the_nearest_neighbour() {
        let mut v = continuum();
        busy(&mut v, "a1");
        let d = place(&v, &Request::new("f", "a1")).unwrap();
        // a1: queue 5 000 × (4 + 1 + 1 − 4) / 4 = 2 500; a2: 1 ms away.
        assert_eq!(d.node, "a2");
        assert!(!d.local);
        assert_eq!(
            d.reason,
            Reason::LocalOverloaded {
                inflight: 4,
                queued: 1,
                slots: 4
            }
        );
        assert_eq!(d.expected_us, 1_000 + 5_000 + 1_000);
        assert_eq!(d.runner_up, Some(("a1".into(), 2_500 + 5_000 + 1_000)));
        assert_eq!(
            d.explain(),
            "placed on a2: local node overloaded (4/4 busy, 1 queued); least expected \
             completion 7.0 ms (queue 0.0 + exec 5.0 + transfer 1.0 + cold 1.0) among 7 \
             eligible; runner-up a1 8.5 ms"
        );
    }

    #[test]
    fn queue_formula_counts_waiting_rounds() {
        let mut v = continuum();
        v.exec.observe("f", "a1", 8_000);
        node(&mut v, "a1").inflight = 4;
        node(&mut v, "a1").queued = 6;
        // Only a1 is eligible.
        let mut r = req(Requirements::default());
        r.exclude = v.nodes[1..].iter().map(|n| n.name.clone()).collect();
        let d = place(&v, &r).unwrap();
        assert_eq!(d.node, "a1");
        assert_eq!(d.breakdown.queue_us, 8_000 * 7 / 4);
        assert_eq!(d.rejected.excluded, 6);
        assert_eq!(d.considered, 1);
        assert_eq!(d.runner_up, None);
    }

    /// The cloud runs it 10× faster but is 20 ms away over 25 MB/s; the
    /// neighbour is 1 ms away over 100 MB/s.
    fn load_and_net(bytes_in: u64) -> Decision {
        let mut v = continuum();
        busy(&mut v, "a1");
        for n in &mut v.nodes {
            n.warm.insert("f".into());
        }
        v.exec.observe("f", "a2", 100_000);
        v.exec.observe("f", "c1", 10_000);
        let mut r = Request::new("f", "a1");
        // Only the neighbour and one cloud node compete.
        r.exclude = ["a1", "b1", "b2", "fog", "c2"].map(String::from).into();
        r.bytes_in = bytes_in;
        place(&v, &r).unwrap()
    }

    #[test]
    fn far_but_fast_wins_with_small_payloads() {
        // a2: 1 000 + 100 000; c1: 20 000 + 40 + 10 000.
        let d = load_and_net(1_000);
        assert_eq!(d.node, "c1");
        assert_eq!(d.breakdown.transfer_us, 20_000 + 40);
        assert_eq!(d.expected_us, 30_040);
        assert_eq!(d.runner_up, Some(("a2".into(), 101_010)));
    }

    #[test]
    fn near_wins_with_large_payloads() {
        // 10 MB: a2: 1 000 + 100 000 + 100 000; c1: 20 000 + 400 000 + 10 000.
        let d = load_and_net(10 * MB);
        assert_eq!(d.node, "a2");
        assert_eq!(d.expected_us, 201_000);
        assert_eq!(d.runner_up, Some(("c1".into(), 430_000)));
        assert_eq!(
            d.reason,
            Reason::LocalIneligible {
                constraint: Constraint::Excluded
            }
        );
    }

    #[test]
    fn exclude_sends_a_retry_elsewhere() {
        let v = continuum();
        let mut r = Request::new("f", "a1");
        r.exclude.insert("a1".into());
        let d = place(&v, &r).unwrap();
        assert_eq!(d.node, "a2");
        assert_eq!(
            d.reason,
            Reason::LocalIneligible {
                constraint: Constraint::Excluded
            }
        );
        assert_eq!(d.rejected.excluded, 1);
        r.exclude.insert("a2".into());
        assert_eq!(place(&v, &r).unwrap().node, "fog");
    }

    #[test]
    fn down_and_zero_slots_are_rejected() {
        let mut v = continuum();
        node(&mut v, "a1").up = false;
        node(&mut v, "a2").slots = 0;
        let d = place(&v, &Request::new("f", "a1")).unwrap();
        assert_eq!(
            d.reason,
            Reason::LocalIneligible {
                constraint: Constraint::Down
            }
        );
        assert_eq!(d.node, "fog");
        assert_eq!(
            (d.rejected.down, d.rejected.no_capacity, d.considered),
            (1, 1, 5)
        );
    }

    #[test]
    fn tier_constraint() {
        let v = continuum();
        let d = place(
            &v,
            &req(Requirements {
                tiers: vec![Tier::Cloud],
                ..Requirements::default()
            }),
        )
        .unwrap();
        assert_eq!(
            d.reason,
            Reason::LocalIneligible {
                constraint: Constraint::Tier
            }
        );
        // c1 and c2 tie at 20 000 + 5 000 + 1 000: the smaller name wins.
        assert_eq!(d.node, "c1");
        assert_eq!(d.runner_up, Some(("c2".into(), 26_000)));
        assert_eq!(d.rejected.tier, 5);
    }

    #[test]
    fn label_constraint() {
        let v = continuum();
        let d = place(
            &v,
            &req(Requirements {
                labels: [("arch".to_string(), "aarch64".to_string())].into(),
                ..Requirements::default()
            }),
        )
        .unwrap();
        assert_eq!(d.node, "a2");
        // The fog node has no arch label at all.
        assert_eq!((d.rejected.labels, d.considered), (4, 3));
    }

    #[test]
    fn privacy_site_keeps_the_origins_site() {
        let mut v = continuum();
        busy(&mut v, "a1");
        busy(&mut v, "a2");
        let r = req(Requirements {
            privacy: Privacy::Site,
            ..Requirements::default()
        });
        let d = place(&v, &r).unwrap();
        // Both site-a nodes are busy and the fog is idle, but the data stays.
        assert_eq!(d.node, "a1");
        assert_eq!(d.rejected.privacy, 5);
        assert_eq!(d.considered, 2);
    }

    #[test]
    fn privacy_site_without_a_site_label_keeps_only_the_origin() {
        let mut v = continuum();
        v.local = "fog".into();
        let mut r = req(Requirements {
            privacy: Privacy::Site,
            ..Requirements::default()
        });
        r.origin = "fog".into();
        let d = place(&v, &r).unwrap();
        assert_eq!((d.node.as_str(), d.reason), ("fog", Reason::Local));
        r.exclude.insert("fog".into());
        let e = place(&v, &r).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no eligible node for function `f`: 7 nodes rejected: 1 excluded, 6 privacy"
        );
    }

    #[test]
    fn privacy_is_relative_to_the_origin_not_the_decider() {
        // The request entered at b1 and reached a1: site b, not a.
        let v = continuum();
        let mut r = req(Requirements {
            privacy: Privacy::Site,
            ..Requirements::default()
        });
        r.origin = "b1".into();
        let d = place(&v, &r).unwrap();
        assert_eq!(d.reason, Reason::Best);
        assert_eq!(d.node, "b1");
        assert_eq!(d.runner_up, Some(("b2".into(), 10_000 + 5_000 + 1_000)));
    }

    #[test]
    fn privacy_tier() {
        let mut v = continuum();
        for n in ["a1", "a2", "b1", "b2"] {
            node(&mut v, n).up = false;
        }
        let r = req(Requirements {
            privacy: Privacy::Tier,
            ..Requirements::default()
        });
        let e = place(&v, &r).unwrap_err();
        assert_eq!(
            e,
            PlaceError::NoEligibleNode {
                function: "f".into(),
                rejected: Rejections {
                    down: 4,
                    privacy: 3,
                    ..Rejections::default()
                }
            }
        );
        assert_eq!(
            e.to_string(),
            "no eligible node for function `f`: 7 nodes rejected: 4 down, 3 privacy"
        );
    }

    #[test]
    fn unknown_origin() {
        let v = continuum();
        let e = place(&v, &Request::new("f", "nowhere")).unwrap_err();
        assert_eq!(e.to_string(), "origin node `nowhere` is not in the view");
    }

    #[test]
    fn tie_break_by_name_whatever_the_order() {
        let mut v = continuum();
        busy(&mut v, "a1");
        // Make b2 and b1 identical and the only candidates.
        let mut r = Request::new("f", "a1");
        r.exclude = ["a1", "a2", "fog", "c1", "c2"].map(String::from).into();
        for order in [false, true] {
            if order {
                v.nodes.reverse();
            }
            let d = place(&v, &r).unwrap();
            assert_eq!(d.node, "b1");
            assert_eq!(d.runner_up, Some(("b2".into(), d.expected_us)));
        }
    }

    #[test]
    fn exec_falls_back_to_the_functions_mean_then_the_prior() {
        let mut v = continuum();
        busy(&mut v, "a1");
        v.exec.observe("f", "c1", 2_000);
        v.exec.observe("f", "c2", 4_000);
        let mut r = Request::new("f", "a1");
        r.exclude = ["a1", "c1", "c2", "b1", "b2", "fog"]
            .map(String::from)
            .into();
        assert_eq!(place(&v, &r).unwrap().breakdown.exec_us, 3_000);
        r.function = "g".into();
        assert_eq!(place(&v, &r).unwrap().breakdown.exec_us, DEFAULT_EXEC_US);
    }

    #[test]
    fn unknown_link_uses_defaults() {
        let mut v = continuum();
        busy(&mut v, "a1");
        let a2 = node(&mut v, "a2");
        a2.rtt_us = None;
        a2.bandwidth_bps = None;
        let mut r = Request::new("f", "a1");
        r.exclude = ["a1", "c1", "c2", "b1", "b2", "fog"]
            .map(String::from)
            .into();
        r.bytes_in = 1_000_000;
        r.bytes_out = 1_000_000;
        let d = place(&v, &r).unwrap();
        // 50 ms + 2 MB at 10 MB/s.
        assert_eq!(d.breakdown.transfer_us, DEFAULT_RTT_US + 200_000);
    }

    #[test]
    fn warm_and_artifact_shape_the_cold_term() {
        let mut v = continuum();
        swamped(&mut v, "a1");
        node(&mut v, "a2").has_artifact = Some(BTreeSet::new());
        node(&mut v, "fog").warm.insert("f".into());
        let d = place(&v, &Request::new("f", "a1")).unwrap();
        // a2: 1 000 + 5 000 + 1 000 + 20 000; fog: 5 000 + 5 000 + 0;
        // a1: 5 000 × 21 / 4 + 5 000 + 1 000 = 32 250.
        assert_eq!(d.node, "fog");
        assert_eq!(d.breakdown.cold_us, 0);
        node(&mut v, "a2").has_artifact = Some(["f".to_string()].into());
        let d = place(&v, &Request::new("f", "a1")).unwrap();
        assert_eq!((d.node.as_str(), d.expected_us), ("a2", 7_000));
    }

    #[test]
    fn near_store_pulls_towards_the_data() {
        let mut v = continuum();
        busy(&mut v, "a1");
        node(&mut v, "c2").stores.insert("images".into());
        let r = req(Requirements {
            near: vec!["images".into()],
            ..Requirements::default()
        });
        let d = place(&v, &r).unwrap();
        // c2: 20 000 + 5 000 + 1 000 = 26 000, no penalty;
        // a2: 7 000 + max(1 000, 20 000) = 27 000; c1 pays 20 000 too.
        assert_eq!(d.node, "c2");
        assert_eq!(d.expected_us, 26_000);
        assert_eq!(d.runner_up, Some(("a2".into(), 27_000)));
        // No node serves it: everybody pays at least 50 ms, the order is kept.
        node(&mut v, "c2").stores.clear();
        let d = place(&v, &r).unwrap();
        assert_eq!(d.node, "a2");
        assert_eq!(d.breakdown.penalty_us, UNKNOWN_STORE_US);
    }

    #[test]
    fn near_penalty_on_the_fast_path_is_reported() {
        let mut v = continuum();
        node(&mut v, "a2").stores.insert("images".into());
        let r = req(Requirements {
            near: vec!["images".into()],
            ..Requirements::default()
        });
        let d = place(&v, &r).unwrap();
        assert_eq!(d.reason, Reason::Local);
        assert_eq!(d.breakdown.penalty_us, 1_000);
    }

    #[test]
    fn cost_and_energy_weights() {
        let mut v = continuum();
        swamped(&mut v, "a1");
        node(&mut v, "a2").cost = 4.0;
        node(&mut v, "fog").energy = 0.5;
        let mut r = req(Requirements {
            cost_weight: 0.5,
            ..Requirements::default()
        });
        // a2: 7 000 + 0.5 × 4 × 5 000 = 17 000; fog: 11 000 + 2 500 = 13 500.
        let d = place(&v, &r).unwrap();
        assert_eq!((d.node.as_str(), d.expected_us), ("fog", 13_500));
        assert_eq!(d.breakdown.penalty_us, 2_500);
        r.requirements.energy_weight = 1.0;
        // fog: 13 500 + 1 × 0.5 × 5 000 = 16 000; a2: 17 000 + 5 000.
        let d = place(&v, &r).unwrap();
        assert_eq!((d.node.as_str(), d.expected_us), ("fog", 16_000));
        // Negative or NaN weights count as nothing.
        r.requirements.cost_weight = -3.0;
        r.requirements.energy_weight = f64::NAN;
        assert_eq!(place(&v, &r).unwrap().node, "a2");
    }

    #[test]
    fn latency_target_ranks_over_target_nodes_lower() {
        let mut v = continuum();
        busy(&mut v, "a1");
        let mut r = req(Requirements {
            latency_ms: Some(10),
            ..Requirements::default()
        });
        let d = place(&v, &r).unwrap();
        assert_eq!((d.node.as_str(), d.target_met), ("a2", Some(true)));
        assert_eq!(d.breakdown.penalty_us, 0);
        // 5 ms target: a2 (7 ms) is 2 ms over and pays it again.
        r.requirements.latency_ms = Some(5);
        let d = place(&v, &r).unwrap();
        assert_eq!((d.node.as_str(), d.target_met), ("a2", Some(false)));
        assert_eq!((d.expected_us, d.breakdown.penalty_us), (9_000, 2_000));
        assert!(
            d.explain()
                .ends_with("misses the latency target; runner-up a1 12.0 ms")
        );
    }

    #[test]
    fn latency_target_trades_against_price() {
        let mut v = continuum();
        node(&mut v, "a2").cost = 5.0;
        node(&mut v, "c1").cost = 0.1;
        let mut r = req(Requirements {
            cost_weight: 1.0,
            ..Requirements::default()
        });
        r.exclude = ["a1", "b1", "b2", "fog", "c2"].map(String::from).into();
        // a2: 7 000 + 25 000; c1: 26 000 + 500.
        let d = place(&v, &r).unwrap();
        assert_eq!((d.node.as_str(), d.expected_us), ("c1", 26_500));
        // c1 takes 26 ms against a 20 ms target: + 6 000. a2 meets it.
        r.requirements.latency_ms = Some(20);
        let d = place(&v, &r).unwrap();
        assert_eq!((d.node.as_str(), d.expected_us), ("a2", 32_000));
        assert_eq!(d.target_met, Some(true));
        assert_eq!(d.runner_up, Some(("c1".into(), 32_500)));
    }

    #[test]
    fn origin_elsewhere_scores_everything() {
        let v = continuum();
        let mut r = Request::new("f", "b2");
        r.bytes_in = 0;
        let d = place(&v, &r).unwrap();
        // a1 is the decider, idle, and holds the request: transfer 0.
        assert_eq!(
            (d.node.as_str(), d.reason, d.local),
            ("a1", Reason::Best, true)
        );
        assert_eq!(d.considered, 7);
    }

    /// A tiny LCG for generated cases.
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) % n.max(1)
        }
    }

    /// A random view of up to 12 nodes and a random request.
    fn generated(rng: &mut Lcg) -> (View, Request) {
        let n = 1 + rng.next(12) as usize;
        let mut v = View {
            local: "n0".into(),
            ..View::default()
        };
        for i in 0..n {
            let tier = Tier::ALL[rng.next(4) as usize];
            let mut node = NodeView::new(format!("n{i}"), tier, rng.next(5) as u32)
                .label("site", ["a", "b"][rng.next(2) as usize])
                .load(rng.next(6) as u32, rng.next(3) as u32);
            node.up = rng.next(10) > 0;
            node.rtt_us = [None, Some(rng.next(30_000))][rng.next(4).min(1) as usize];
            if i == 0 {
                node.rtt_us = Some(0);
            }
            node.bandwidth_bps = [None, Some(1 + rng.next(100 * MB))][rng.next(4).min(1) as usize];
            if rng.next(2) == 0 {
                node.warm.insert("f".into());
            }
            if rng.next(3) == 0 {
                node.has_artifact = Some(BTreeSet::new());
            }
            if rng.next(3) == 0 {
                node.stores.insert("s".into());
            }
            node.cost = rng.next(40) as f64 / 10.0;
            if rng.next(3) > 0 {
                v.exec.observe("f", &node.name, 100 + rng.next(40_000));
            }
            v.nodes.push(node);
        }
        // Exact ties: a twin of some node under a smaller name, scanned after it.
        if rng.next(2) == 0 {
            let mut twin = v.nodes[rng.next(n as u64) as usize].clone();
            if let Some(e) = v.exec.estimate("f", &twin.name) {
                v.exec.insert("f", &format!("m{}", twin.name), e);
            }
            twin.name = format!("m{}", twin.name);
            v.nodes.push(twin);
        }
        let mut r = Request::new("f", format!("n{}", rng.next(n as u64)));
        r.bytes_in = rng.next(5 * MB);
        r.bytes_out = rng.next(MB);
        r.requirements.privacy =
            [Privacy::None, Privacy::Site, Privacy::Tier][rng.next(3) as usize];
        if rng.next(3) == 0 {
            r.requirements.near = vec!["s".into()];
        }
        if rng.next(3) == 0 {
            r.requirements.latency_ms = Some(rng.next(60) as u32);
        }
        if rng.next(3) == 0 {
            r.requirements.cost_weight = rng.next(20) as f64 / 10.0;
        }
        if rng.next(4) == 0 {
            r.exclude.insert(format!("n{}", rng.next(n as u64)));
        }
        (v, r)
    }

    /// Scoring every eligible node in full gives what `place` gives.
    #[test]
    fn pruning_does_not_change_the_result() {
        let mut rng = Lcg(42);
        let (mut scanned, mut errors) = (0, 0);
        for _ in 0..5_000 {
            let (v, r) = generated(&mut rng);
            let got = place(&v, &r);
            let origin = v.node(&r.origin).unwrap();
            let filter = Filter::new(&r, origin);
            let scorer = Scorer::new(&v, &r, v.node(&v.local), NearMode::Eager);
            let mut all: Vec<(u64, &str)> = v
                .nodes
                .iter()
                .filter(|n| filter.check(n).is_ok())
                .map(|n| (scorer.cost(n).total, n.name.as_str()))
                .collect();
            all.sort();
            match got {
                Ok(d) if d.reason == Reason::Local => assert_eq!(d.node, v.local),
                Ok(d) => {
                    scanned += 1;
                    assert_eq!((d.expected_us, d.node.as_str()), all[0], "{v:?} {r:?}");
                    let runner_up = d.runner_up.as_ref().map(|(n, us)| (*us, n.as_str()));
                    assert_eq!(runner_up, all.get(1).copied(), "{v:?} {r:?}");
                    assert_eq!(d.considered as usize, all.len());
                    assert_eq!((d.considered + d.rejected.total()) as usize, v.nodes.len());
                }
                Err(PlaceError::NoEligibleNode { rejected, .. }) => {
                    errors += 1;
                    assert!(all.is_empty());
                    assert_eq!(rejected.total() as usize, v.nodes.len());
                }
                Err(e) => panic!("{e}"),
            }
        }
        // The generator reaches every outcome.
        assert!(scanned > 1_000 && errors > 100, "{scanned} {errors}");
    }

    #[test]
    fn place_is_deterministic_over_node_order() {
        let mut v = continuum();
        busy(&mut v, "a1");
        v.exec.observe("f", "c1", 2_000);
        let r = Request {
            bytes_in: 50_000,
            ..Request::new("f", "a1")
        };
        let first = serde_json::to_string(&place(&v, &r).unwrap()).unwrap();
        for k in 0..v.nodes.len() {
            v.nodes.rotate_left(1);
            v.nodes.swap(0, k);
            assert_eq!(
                serde_json::to_string(&place(&v, &r).unwrap()).unwrap(),
                first
            );
        }
    }

    #[test]
    fn tier_parses_and_displays() {
        for t in Tier::ALL {
            assert_eq!(t.to_string().parse::<Tier>(), Ok(t));
        }
        assert_eq!(
            "mist".parse::<Tier>().unwrap_err().to_string(),
            "unknown tier `mist`: expected device, edge, fog or cloud"
        );
        assert_eq!(serde_json::to_string(&Tier::Fog).unwrap(), r#""fog""#);
    }

    #[test]
    fn to_us_rounds_and_clamps() {
        assert_eq!(to_us(2.5), 3);
        assert_eq!(to_us(2.49), 2);
        assert_eq!(to_us(-1.0), 0);
        assert_eq!(to_us(f64::NAN), 0);
        assert_eq!(to_us(f64::INFINITY), 1_000_000_000_000_000);
    }
}
