//! The placement policy: filter, the local fast path, then least expected
//! completion, over an [`Index`]. See the crate documentation for the
//! formula.

use crate::decision::{Constraint, Cost, Decision, Excluded, PlaceError, Reason, Rejections};
use crate::exec::to_us;
use crate::index::{Bits, ExecRow, Index, Row};
use crate::model::{Privacy, Request, View};
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

/// The deciding node's own state for one decision, where it differs from
/// its row in the index: a node plans with the *function's* slots and load
/// here (so a function saturated here spills before the node is full),
/// whether the function is warm here, and its learned time here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Local {
    /// The function's slots here.
    pub slots: u32,
    /// The function's invocations running here.
    pub inflight: u32,
    /// The function's invocations waiting here.
    pub queued: u32,
    /// Whether it is warm here.
    pub warm: bool,
    /// Its learned execution time here, µs.
    pub exec_us: Option<u64>,
}

/// Chooses the node that runs `req` in `view`. See the crate documentation.
/// Builds an [`Index`] of the view and decides with [`place_in`].
pub fn place(view: &View, req: &Request) -> Result<Decision, PlaceError> {
    place_in(&Index::new(view), req, None)
}

/// Chooses the node that runs `req` among the nodes of `index`; `local`,
/// when given, overrides the deciding node's load, warmth and learned time
/// for this decision. The decision is the one [`place`] gives for the view
/// the index was built from.
pub fn place_in(
    index: &Index,
    req: &Request,
    local: Option<&Local>,
) -> Result<Decision, PlaceError> {
    let ctx = Ctx::new(index, req, local)?;
    if let Some(key) = req.state.as_ref().and_then(|s| s.key.as_deref()) {
        return place_owner(&ctx, key);
    }
    let origin = ctx.origin;
    let here = Some(origin) == index.local;

    let reason = if here {
        let (inflight, queued, slots) = ctx.load(origin);
        match ctx.check(origin) {
            Ok(()) if inflight < slots && queued == 0 => 'fast: {
                let scorer = Scorer::new(&ctx, NearMode::Lazy);
                let s = scorer.cost(origin);
                if s.cost.state_us > 0 {
                    // Idle, but its state is elsewhere: reaching it from
                    // here may cost more than running there.
                    break 'fast Reason::StateElsewhere {
                        state_us: s.cost.state_us,
                    };
                }
                return Ok(Decision {
                    node: index.names[origin].clone(),
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
                inflight,
                queued,
                slots,
            },
            Err(constraint) => Reason::LocalIneligible { constraint },
        }
    } else {
        Reason::Best
    };

    let scorer = Scorer::new(&ctx, NearMode::Eager);
    let mut rejected = Rejections::default();
    let mut considered = 0u32;
    let mut best: Option<(usize, Scored)> = None;
    let mut second: Option<(usize, u64)> = None;
    // The deciding node first: it moves nothing, so it is usually among the
    // cheapest, and a low bound early cuts the most nodes short. The order
    // changes no result (the order of the ranking is total).
    let first = index.local.into_iter();
    let rest = (0..index.rows.len()).filter(|&i| Some(i) != index.local);
    for i in first.chain(rest) {
        if let Err(c) = ctx.check(i) {
            rejected.add(c);
            continue;
        }
        considered = considered.saturating_add(1);
        // Every term is non-negative and the over-target penalty grows with
        // the time terms, so once a node's first terms exceed the runner-up
        // it can be neither best nor runner-up: stop scoring it. Terms come
        // cheapest first. This only saves work; the result is the one full
        // scoring gives.
        let limit = second.map_or(u64::MAX, |(_, us)| us);
        if scorer.bound(scorer.rtt(i), 0) > limit {
            continue;
        }
        let transfer_us = scorer.transfer(i);
        let near_us = scorer.near(i);
        let state_us = scorer.state(i);
        let reach_us = transfer_us.saturating_add(near_us).saturating_add(state_us);
        if scorer.bound(reach_us, 0) > limit {
            continue;
        }
        let exec_us = scorer.exec(i);
        let queue_us = ctx.queue(i, exec_us);
        let price_us = scorer.price(i, exec_us);
        let time_us = reach_us.saturating_add(exec_us).saturating_add(queue_us);
        if scorer.bound(time_us, price_us) > limit {
            continue;
        }
        let scored = scorer.assemble(Terms {
            queue_us,
            exec_us,
            transfer_us,
            cold_us: scorer.cold(i),
            state_us,
            near_us,
            price_us,
        });
        let total = scored.total;
        match best {
            Some((b, b_scored)) if !ctx.better(total, i, b_scored.total, b) => {
                if second.is_none_or(|(s, s_total)| ctx.better(total, i, s_total, s)) {
                    second = Some((i, total));
                }
            }
            _ => {
                second = best.map(|(b, b_scored)| (b, b_scored.total));
                best = Some((i, scored));
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
        node: index.names[node].clone(),
        local: Some(node) == index.local,
        reason,
        expected_us: scored.total,
        breakdown: scored.cost,
        considered,
        rejected,
        runner_up: second.map(|(n, us)| (index.names[n].clone(), us)),
        target_met: scorer.target_met(scored.latency_us),
    })
}

/// An actor's invocation: on the eligible node that ranks first for its
/// key, scored for the breakdown; the runner-up is the one that would own
/// it next.
fn place_owner(ctx: &Ctx<'_>, key: &str) -> Result<Decision, PlaceError> {
    let index = ctx.index;
    let mut rejected = Rejections::default();
    let mut considered = 0u32;
    let mut ranked: Vec<(u64, usize)> = Vec::new();
    for i in 0..index.rows.len() {
        if let Err(c) = ctx.check(i) {
            rejected.add(c);
            continue;
        }
        considered = considered.saturating_add(1);
        ranked.push((owner_rank(&ctx.req.function, key, &index.names[i]), i));
    }
    // Highest rank first; equal ranks (never, in practice) by name.
    ranked.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then_with(|| index.names[a.1].cmp(&index.names[b.1]))
    });
    let Some(&(_, node)) = ranked.first() else {
        return Err(PlaceError::NoEligibleNode {
            function: ctx.req.function.clone(),
            rejected,
        });
    };
    let scorer = Scorer::new(ctx, NearMode::Eager);
    let scored = scorer.cost(node);
    Ok(Decision {
        node: index.names[node].clone(),
        local: Some(node) == index.local,
        reason: Reason::Owner,
        expected_us: scored.total,
        breakdown: scored.cost,
        considered,
        rejected,
        runner_up: ranked
            .get(1)
            .map(|&(_, n)| (index.names[n].clone(), scorer.cost(n).total)),
        target_met: scorer.target_met(scored.latency_us),
    })
}

/// The rank of `node` for an actor's key: FNV-1a of (function, key, node),
/// then SplitMix64's finalizer to spread it. Fixed: every node and every
/// build ranks alike.
pub fn owner_rank(function: &str, key: &str, node: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [function.as_bytes(), key.as_bytes(), node.as_bytes()] {
        for &b in part.iter().chain(&[0xff]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// Every node a hard constraint rules out for `req`, with the first
/// constraint it fails and, for what a function declares, which store or
/// topic it lacks: what `weft explain` lists.
pub fn exclusions(
    index: &Index,
    req: &Request,
    local: Option<&Local>,
) -> Result<Vec<Excluded>, PlaceError> {
    let ctx = Ctx::new(index, req, local)?;
    let mut out = Vec::new();
    for i in 0..index.rows.len() {
        if let Err(constraint) = ctx.check(i) {
            out.push(Excluded {
                node: index.names[i].clone(),
                constraint,
                detail: ctx.detail(i, constraint),
            });
        }
    }
    out.sort_by(|a, b| a.node.cmp(&b.node));
    Ok(out)
}

/// One decision's request resolved against the index: names to ids once.
struct Ctx<'a> {
    index: &'a Index,
    req: &'a Request,
    local: Option<&'a Local>,
    origin: usize,
    /// The function's id, if any node knows it.
    function: Option<usize>,
    exclude: Bits,
    /// Allowed tiers, one bit each; 0: any.
    tiers: u8,
    /// Required labels by id; `None`: no node carries that label.
    labels: Vec<Option<usize>>,
    origin_site: Option<u32>,
    /// Required stores by id; `None`: no node serves it.
    stores: Vec<Option<usize>>,
    /// Per topic set: whether it provides every topic the function uses.
    topics_ok: Vec<bool>,
}

impl<'a> Ctx<'a> {
    fn new(
        index: &'a Index,
        req: &'a Request,
        local: Option<&'a Local>,
    ) -> Result<Ctx<'a>, PlaceError> {
        let origin = *index
            .by_name
            .get(&req.origin)
            .ok_or_else(|| PlaceError::UnknownOrigin(req.origin.clone()))?;
        let r = &req.requirements;
        let mut exclude = Bits::default();
        for n in &req.exclude {
            if let Some(&i) = index.by_name.get(n) {
                exclude.set(i, true);
            }
        }
        let tiers = r.tiers.iter().fold(0u8, |m, t| m | 1 << (*t as u8));
        let labels = r
            .labels
            .iter()
            .map(|(k, v)| {
                index
                    .labels
                    .get(&(k.clone(), v.clone()))
                    .map(|id| id as usize)
            })
            .collect();
        let stores = r
            .stores
            .iter()
            .map(|s| index.stores.get(s.as_str()).map(|id| id as usize))
            .collect();
        let topics_ok = index
            .topic_sets
            .iter()
            .map(|set| {
                r.topics
                    .iter()
                    .all(|t| weft_manifest::topics_provide(set, t))
            })
            .collect();
        Ok(Ctx {
            index,
            req,
            local,
            origin,
            function: index
                .functions
                .get(req.function.as_str())
                .map(|f| f as usize),
            exclude,
            tiers,
            labels,
            origin_site: index.rows[origin].site,
            stores,
            topics_ok,
        })
    }

    #[inline]
    fn row(&self, i: usize) -> &Row {
        &self.index.rows[i]
    }

    #[inline]
    fn is_local(&self, i: usize) -> bool {
        Some(i) == self.index.local
    }

    /// `(inflight, queued, slots)`, with the local override.
    #[inline]
    fn load(&self, i: usize) -> (u32, u32, u32) {
        match self.local {
            Some(l) if self.is_local(i) => (l.inflight, l.queued, l.slots),
            _ => {
                let r = self.row(i);
                (r.inflight, r.queued, r.slots)
            }
        }
    }

    /// The first constraint node `i` fails, in [`Constraint::ALL`] order.
    #[inline]
    fn check(&self, i: usize) -> Result<(), Constraint> {
        let row = self.row(i);
        let r = &self.req.requirements;
        if !row.up {
            return Err(Constraint::Down);
        }
        if self.exclude.get(i) {
            return Err(Constraint::Excluded);
        }
        if self.load(i).2 == 0 {
            return Err(Constraint::NoCapacity);
        }
        if self.tiers != 0 && self.tiers >> (row.tier as u8) & 1 == 0 {
            return Err(Constraint::Tier);
        }
        if !self
            .labels
            .iter()
            .all(|l| l.is_some_and(|id| self.index.label_nodes[id].get(i)))
        {
            return Err(Constraint::Labels);
        }
        let private = |p: Privacy| match p {
            Privacy::None => true,
            Privacy::Site => match self.origin_site {
                Some(site) => row.site == Some(site),
                None => i == self.origin,
            },
            Privacy::Tier => row.tier == self.row(self.origin).tier,
        };
        if !private(r.privacy) || !private(self.req.context_privacy) {
            return Err(Constraint::Privacy);
        }
        if !self
            .stores
            .iter()
            .all(|s| s.is_some_and(|id| self.index.store_nodes[id].get(i)))
        {
            return Err(Constraint::Store);
        }
        if r.broker && !row.broker {
            return Err(Constraint::Broker);
        }
        if !r.topics.is_empty() && !self.topics_ok[row.topics as usize] {
            return Err(Constraint::Topic);
        }
        Ok(())
    }

    /// For `weft explain`: which declared store or topic node `i` lacks.
    fn detail(&self, i: usize, c: Constraint) -> Option<String> {
        let r = &self.req.requirements;
        match c {
            Constraint::Store => r
                .stores
                .iter()
                .zip(&self.stores)
                .find(|(_, id)| !id.is_some_and(|id| self.index.store_nodes[id].get(i)))
                .map(|(s, _)| format!("no key-value store `{s}`")),
            Constraint::Topic => {
                let set = &self.index.topic_sets[self.row(i).topics as usize];
                r.topics
                    .iter()
                    .find(|t| !weft_manifest::topics_provide(set, t))
                    .map(|t| format!("topic `{t}` not provided"))
            }
            Constraint::Broker => Some("no MQTT broker".to_string()),
            Constraint::Labels => r
                .labels
                .iter()
                .zip(&self.labels)
                .find(|(_, id)| !id.is_some_and(|id| self.index.label_nodes[id].get(i)))
                .map(|((k, v), _)| format!("lacks label {k}={v}")),
            _ => None,
        }
    }

    /// Waiting for a slot: the invocations ahead of this one beyond the free
    /// slots, each holding a slot for one execution, `slots` at a time.
    #[inline]
    fn queue(&self, i: usize, exec_us: u64) -> u64 {
        let (inflight, queued, slots) = self.load(i);
        let ahead = (u64::from(inflight) + u64::from(queued) + 1).saturating_sub(u64::from(slots));
        if ahead == 0 {
            0
        } else {
            mul_div(exec_us, ahead, u64::from(slots))
        }
    }

    /// `(a_us, a)` ranks before `(b_us, b)`: less expected time, then the
    /// smaller name. Names are unique, so this is a total order.
    #[inline]
    fn better(&self, a_us: u64, a: usize, b_us: u64, b: usize) -> bool {
        match a_us.cmp(&b_us) {
            Ordering::Less => true,
            Ordering::Greater => false,
            Ordering::Equal => self.index.names[a] < self.index.names[b],
        }
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
struct Scorer<'c, 'a> {
    ctx: &'c Ctx<'a>,
    exec: Option<&'a ExecRow>,
    warm: Option<&'a Bits>,
    have: Option<&'a Bits>,
    /// Execution time for a node without its own estimate; computed on first
    /// need (the fast path usually has an estimate).
    fallback_exec_us: OnceCell<u64>,
    /// `(bytes_in + bytes_out) × 10⁶`.
    bytes_e6: u128,
    /// Per `near` store: its id, if any node serves it.
    near_ids: Vec<Option<usize>>,
    /// Per `near` store: round trip to the nearest up node serving it.
    /// Empty in lazy mode.
    nearest: Vec<u64>,
    /// The state's home store: its id, if any node serves it, and the
    /// round trip to the nearest up node that does.
    home: Option<(Option<usize>, u64)>,
    target_us: Option<u64>,
}

impl<'c, 'a> Scorer<'c, 'a> {
    fn new(ctx: &'c Ctx<'a>, near: NearMode) -> Scorer<'c, 'a> {
        let ix = ctx.index;
        let req = ctx.req;
        let near_ids: Vec<Option<usize>> = req
            .requirements
            .near
            .iter()
            .map(|s| ix.stores.get(s.as_str()).map(|id| id as usize))
            .collect();
        let home_id = req
            .state
            .as_ref()
            .and_then(|s| s.home.as_deref())
            .map(|h| ix.stores.get(h).map(|id| id as usize));
        let mut scorer = Scorer {
            ctx,
            exec: ctx.function.map(|f| &ix.exec.by_function[f]),
            warm: ctx.function.map(|f| &ix.warm[f]),
            have: ctx.function.map(|f| &ix.have[f]),
            fallback_exec_us: OnceCell::new(),
            bytes_e6: (u128::from(req.bytes_in) + u128::from(req.bytes_out)) * 1_000_000,
            near_ids,
            nearest: Vec::new(),
            home: None,
            target_us: req.requirements.latency_ms.map(|ms| u64::from(ms) * 1_000),
        };
        if near == NearMode::Eager {
            scorer.nearest = (0..scorer.near_ids.len())
                .map(|k| scorer.nearest_serving(scorer.near_ids[k]))
                .collect();
        }
        scorer.home = home_id.map(|id| (id, scorer.nearest_serving(id)));
        scorer
    }

    /// Round trip from the deciding node: 0 for itself, whatever the view
    /// says.
    #[inline]
    fn rtt(&self, i: usize) -> u64 {
        if self.ctx.is_local(i) {
            0
        } else {
            self.ctx.row(i).rtt_us.unwrap_or(DEFAULT_RTT_US)
        }
    }

    /// 0 on the deciding node, which holds the request; elsewhere one round
    /// trip plus the bytes both ways at the link's bandwidth.
    #[inline]
    fn transfer(&self, i: usize) -> u64 {
        if self.ctx.is_local(i) {
            return 0;
        }
        let row = self.ctx.row(i);
        let bw = row.bandwidth_bps.unwrap_or(DEFAULT_BANDWIDTH_BPS).max(1);
        // A 64-bit division unless the payload is beyond 18 TB.
        let move_us = match u64::try_from(self.bytes_e6) {
            Ok(b) => b / bw,
            Err(_) => u64::try_from(self.bytes_e6 / u128::from(bw)).unwrap_or(u64::MAX),
        };
        row.rtt_us.unwrap_or(DEFAULT_RTT_US).saturating_add(move_us)
    }

    /// The learned time there, else the function's mean, else the prior.
    #[inline]
    fn exec(&self, i: usize) -> u64 {
        let local = self.ctx.local.filter(|_| self.ctx.is_local(i));
        let own = match local {
            Some(l) => l.exec_us,
            None => self.exec.and_then(|e| e.get(i)),
        };
        match own {
            Some(us) => us,
            None => *self.fallback_exec_us.get_or_init(|| self.mean_exec()),
        }
    }

    /// The function's mean over the nodes with an estimate (the deciding
    /// node's own as overridden), else the prior.
    fn mean_exec(&self) -> u64 {
        let (mut sum, mut count) = self.exec.map_or((0, 0), |e| (e.sum_us, e.count));
        if let (Some(l), Some(me)) = (self.ctx.local, self.ctx.index.local) {
            if let Some(old) = self.exec.and_then(|e| e.get(me)) {
                sum -= u128::from(old);
                count -= 1;
            }
            if let Some(us) = l.exec_us {
                sum += u128::from(us);
                count += 1;
            }
        }
        if count == 0 {
            DEFAULT_EXEC_US
        } else {
            (sum / u128::from(count)) as u64
        }
    }

    /// Every term for one node.
    fn cost(&self, i: usize) -> Scored {
        let exec_us = self.exec(i);
        self.assemble(Terms {
            queue_us: self.ctx.queue(i, exec_us),
            exec_us,
            transfer_us: self.transfer(i),
            cold_us: self.cold(i),
            state_us: self.state(i),
            near_us: self.near(i),
            price_us: self.price(i, exec_us),
        })
    }

    /// Cold start, and the artifact fetch if the node is known to lack it.
    #[inline]
    fn cold(&self, i: usize) -> u64 {
        let warm = match self.ctx.local {
            Some(l) if self.ctx.is_local(i) => l.warm,
            _ => self.warm.is_some_and(|w| w.get(i)),
        };
        if warm {
            0
        } else if self.lacks_artifact(i) {
            COLD_START_US + ARTIFACT_FETCH_US
        } else {
            COLD_START_US
        }
    }

    /// Known to lack the artifact: its list is known and does not hold the
    /// function.
    #[inline]
    fn lacks_artifact(&self, i: usize) -> bool {
        self.ctx.row(i).artifacts_known && !self.have.is_some_and(|h| h.get(i))
    }

    /// Time spent reaching the `near` stores the node does not serve.
    #[inline]
    fn near(&self, i: usize) -> u64 {
        if self.near_ids.is_empty() {
            return 0;
        }
        let rtt = self.rtt(i);
        let mut near_us = 0u64;
        for (k, id) in self.near_ids.iter().enumerate() {
            if id.is_some_and(|id| self.ctx.index.store_nodes[id].get(i)) {
                continue;
            }
            let nearest = match self.nearest.get(k) {
                Some(&n) => n,
                None => self.nearest_serving(self.near_ids[k]),
            };
            near_us = near_us.saturating_add(rtt.max(nearest));
        }
        near_us
    }

    /// Round trip to the store `id` through the nearest up node serving
    /// it: the round trip to that node (0 for the deciding node) plus that
    /// node's own to the store ([`UNKNOWN_STORE_US`] if none serves it).
    fn nearest_serving(&self, id: Option<usize>) -> u64 {
        let Some(id) = id else {
            return UNKNOWN_STORE_US;
        };
        let ix = self.ctx.index;
        let mut nearest = UNKNOWN_STORE_US;
        for n in ix.store_nodes[id].iter() {
            let row = &ix.rows[n];
            if !row.up {
                continue;
            }
            let rtt = if Some(n) == ix.local {
                0
            } else {
                row.rtt_us.unwrap_or(DEFAULT_RTT_US)
            };
            nearest = nearest.min(rtt.saturating_add(ix.store_rtt(id, n)));
        }
        nearest
    }

    /// Reaching the state from node `i`: on a node serving the home, its
    /// trips at that node's round trip to the store (free on its own
    /// disk); otherwise the trips to the home through the nearest node
    /// serving it, and the bytes (`external`, `edge`); nothing for an
    /// actor (`function`: it runs on its key's owner, where its state is);
    /// or carrying it from the deciding node (`client`, which holds it
    /// with the request).
    #[inline]
    fn state(&self, i: usize) -> u64 {
        let Some(s) = &self.ctx.req.state else {
            return 0;
        };
        let bytes = |i: usize| {
            let bw = self
                .ctx
                .row(i)
                .bandwidth_bps
                .unwrap_or(DEFAULT_BANDWIDTH_BPS)
                .max(1);
            mul_div(s.bytes, 1_000_000, bw)
        };
        if let Some((id, nearest)) = self.home {
            if let Some(id) = id.filter(|&id| self.ctx.index.store_nodes[id].get(i)) {
                // Served here: its trips cost what this node measured to
                // the store (nothing when it is on its own disk).
                let store = self.ctx.index.store_rtt(id, i);
                return store.saturating_mul(u64::from(s.trips.max(1)));
            }
            let trip = self.rtt(i).max(nearest);
            return trip
                .saturating_mul(u64::from(s.trips.max(1)))
                .saturating_add(bytes(i));
        }
        if s.key.is_some() {
            // An actor runs where its state is.
            return 0;
        }
        if self.ctx.is_local(i) { 0 } else { bytes(i) }
    }

    /// Price and energy, weighted: not time, so they weigh against the
    /// latency target but do not count towards it.
    #[inline]
    fn price(&self, i: usize, exec_us: u64) -> u64 {
        let r = &self.ctx.req.requirements;
        let row = self.ctx.row(i);
        let mut us = 0u64;
        if r.cost_weight != 0.0 {
            us = us.saturating_add(to_us(r.cost_weight * row.cost * exec_us as f64));
        }
        if r.energy_weight != 0.0 {
            us = us.saturating_add(to_us(r.energy_weight * row.energy * exec_us as f64));
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
            .saturating_add(t.state_us)
            .saturating_add(t.near_us);
        let cost = Cost {
            queue_us: t.queue_us,
            exec_us: t.exec_us,
            transfer_us: t.transfer_us,
            cold_us: t.cold_us,
            state_us: t.state_us,
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
    state_us: u64,
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

/// `a * b / c`, floored, without overflow (saturating at `u64::MAX`).
fn mul_div(a: u64, b: u64, c: u64) -> u64 {
    let c = c.max(1);
    match a.checked_mul(b) {
        Some(ab) => ab / c,
        None => u64::try_from(u128::from(a) * u128::from(b) / u128::from(c)).unwrap_or(u64::MAX),
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
    fn a_context_privacy_holds_beside_the_functions_own() {
        let mut v = continuum();
        busy(&mut v, "a1");
        busy(&mut v, "a2");
        // A workflow's `site` on a function that says nothing.
        let mut r = req(Requirements::default());
        r.context_privacy = Privacy::Site;
        let d = place(&v, &r).unwrap();
        assert_eq!((d.node.as_str(), d.rejected.privacy), ("a1", 5));
        // The function's `tier` and the workflow's `site`: both hold.
        let mut r = req(Requirements {
            privacy: Privacy::Tier,
            ..Requirements::default()
        });
        r.context_privacy = Privacy::Site;
        let d = place(&v, &r).unwrap();
        assert_eq!((d.node.as_str(), d.considered), ("a1", 2));
        // Without it, nothing is ruled out for privacy.
        let d = place(&v, &req(Requirements::default())).unwrap();
        assert_eq!((d.rejected.privacy, d.considered), (0, 7));
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
    fn state_is_free_where_it_lives_and_costs_its_trips_and_bytes_elsewhere() {
        let mut v = continuum();
        busy(&mut v, "a1");
        node(&mut v, "c2").stores.insert("cloud".into());
        let mut r = req(Requirements::default());
        r.state = Some(crate::StateUse {
            home: Some("cloud".into()),
            bytes: 2 * MB,
            trips: 3,
            ..Default::default()
        });
        let d = place(&v, &r).unwrap();
        // c2 holds it: 20 000 + 5 000 + 1 000. a2 would pay three trips of
        // max(1 000, 20 000) and 2 MB at 100 MB/s: 7 000 + 80 000.
        assert_eq!((d.node.as_str(), d.expected_us), ("c2", 26_000));
        assert_eq!(d.breakdown.state_us, 0);
        r.exclude.insert("c2".into());
        r.exclude.insert("a1".into());
        let d = place(&v, &r).unwrap();
        assert_eq!((d.node.as_str(), d.breakdown.state_us), ("a2", 80_000));
        assert!(d.explain().contains("+ state 80.0"), "{}", d.explain());
    }

    #[test]
    fn an_idle_node_whose_state_is_elsewhere_scores_the_others() {
        let mut v = continuum();
        node(&mut v, "c2").stores.insert("cloud".into());
        let mut r = req(Requirements::default());
        r.state = Some(crate::StateUse {
            home: Some("cloud".into()),
            trips: 20,
            ..Default::default()
        });
        // a1 is idle, but twenty trips to c2 cost more than going there.
        let d = place(&v, &r).unwrap();
        assert_eq!(d.node, "c2");
        assert_eq!(d.reason, Reason::StateElsewhere { state_us: 400_000 });
        assert!(
            d.explain().contains("its state is elsewhere (+400.0 ms"),
            "{}",
            d.explain()
        );
        // Where the state is, the idle node runs it without scoring.
        node(&mut v, "a1").stores.insert("cloud".into());
        let d = place(&v, &r).unwrap();
        assert_eq!((d.node.as_str(), d.reason), ("a1", Reason::Local));
        // Serving it through a link (a Redis in the cloud both map) costs
        // the trips at the round trip a1 measured to it.
        node(&mut v, "a1")
            .store_rtt_us
            .insert("cloud".into(), 20_000);
        node(&mut v, "c2").store_rtt_us.insert("cloud".into(), 100);
        let d = place(&v, &r).unwrap();
        assert_eq!(d.reason, Reason::StateElsewhere { state_us: 400_000 });
        assert_eq!((d.node.as_str(), d.breakdown.state_us), ("c2", 2_000));
    }

    #[test]
    fn an_actors_key_runs_on_its_owner_and_moves_only_when_its_owner_goes() {
        let mut v = continuum();
        let mut r = req(Requirements::default());
        let keys: Vec<String> = (0..200).map(|k| format!("user-{k}")).collect();
        let owners = |v: &View, r: &mut Request| -> Vec<String> {
            keys.iter()
                .map(|k| {
                    r.state = Some(crate::StateUse {
                        key: Some(k.clone()),
                        bytes: 2 * MB,
                        ..Default::default()
                    });
                    let d = place(v, r).unwrap();
                    assert_eq!(d.reason, Reason::Owner);
                    assert_eq!(d.breakdown.state_us, 0, "the state is at its owner");
                    d.node
                })
                .collect()
        };
        let before = owners(&v, &mut r);
        // Spread over the nodes, not all on the cheapest one.
        let distinct: BTreeSet<&String> = before.iter().collect();
        assert!(distinct.len() >= 4, "{distinct:?}");
        // Load changes no owner.
        busy(&mut v, "a1");
        assert_eq!(owners(&v, &mut r), before);
        // The owner of the first key goes down: its keys move, no others.
        let gone = before[0].clone();
        node(&mut v, &gone).up = false;
        let after = owners(&v, &mut r);
        for (b, a) in before.iter().zip(&after) {
            if *b == gone {
                assert_ne!(a, &gone);
            } else {
                assert_eq!(a, b);
            }
        }
        // The same rank on every node and build.
        // (The value an independent implementation of FNV-1a and SplitMix64 gives.)
        assert_eq!(
            owner_rank("count", "alice", "edge-1"),
            0xe9ec_ba91_bee2_26ae
        );
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
            let ix = Index::new(&v);
            let ctx = Ctx::new(&ix, &r, None).unwrap();
            let scorer = Scorer::new(&ctx, NearMode::Eager);
            let mut all: Vec<(u64, &str)> = (0..ix.len())
                .filter(|&i| ctx.check(i).is_ok())
                .map(|i| (scorer.cost(i).total, ix.names()[i].as_str()))
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
    fn declared_stores_broker_and_topics_are_hard() {
        let mut v = continuum();
        node(&mut v, "a1").stores.insert("cache".into());
        node(&mut v, "c1").stores.insert("cache".into());
        node(&mut v, "c1").broker = true;
        node(&mut v, "fog").broker = true;
        node(&mut v, "c1").topics = vec!["orders.>".into()];
        node(&mut v, "fog").topics = vec!["audit.*".into()];
        // The store: only a1 and c1 serve it; a1 is idle, so local.
        let r = req(Requirements {
            stores: vec!["cache".into()],
            ..Requirements::default()
        });
        assert_eq!(place(&v, &r).unwrap().node, "a1");
        busy(&mut v, "a1");
        let d = place(&v, &r).unwrap();
        assert_eq!(d.node, "a1", "c1 is 20 ms away; a1's queue is shorter");
        assert_eq!(d.rejected.store, 5);
        // A broker and a topic: c1 alone.
        let r = req(Requirements {
            broker: true,
            topics: vec!["orders.created".into()],
            ..Requirements::default()
        });
        let d = place(&v, &r).unwrap();
        assert_eq!(d.node, "c1");
        assert_eq!((d.rejected.broker, d.rejected.topic), (5, 1));
        assert_eq!(
            d.reason,
            Reason::LocalIneligible {
                constraint: Constraint::Broker
            }
        );
        // A store nobody serves: nobody.
        let r = req(Requirements {
            stores: vec!["nowhere".into()],
            ..Requirements::default()
        });
        assert!(matches!(
            place(&v, &r),
            Err(PlaceError::NoEligibleNode { rejected, .. }) if rejected.store == 7
        ));
    }

    #[test]
    fn exclusions_name_what_each_node_lacks() {
        let mut v = continuum();
        node(&mut v, "a1").stores.insert("cache".into());
        node(&mut v, "b1").topics = vec!["audit.>".into()];
        node(&mut v, "c2").up = false;
        let r = req(Requirements {
            stores: vec!["cache".into()],
            topics: vec!["orders.new".into()],
            tiers: vec![Tier::Edge, Tier::Cloud],
            ..Requirements::default()
        });
        let ix = Index::new(&v);
        let out: Vec<(String, Constraint, Option<String>)> = exclusions(&ix, &r, None)
            .unwrap()
            .into_iter()
            .map(|e| (e.node, e.constraint, e.detail))
            .collect();
        let store = || Some("no key-value store `cache`".to_string());
        assert_eq!(
            out,
            vec![
                ("a2".into(), Constraint::Store, store()),
                ("b1".into(), Constraint::Store, store()),
                ("b2".into(), Constraint::Store, store()),
                ("c1".into(), Constraint::Store, store()),
                ("c2".into(), Constraint::Down, None),
                ("fog".into(), Constraint::Tier, None),
            ]
        );
    }

    #[test]
    fn a_local_override_is_the_view_with_those_numbers() {
        let mut rng = Lcg(7);
        for _ in 0..2_000 {
            let (mut v, r) = generated(&mut rng);
            let Some(me) = v.nodes.iter().position(|n| n.name == v.local) else {
                continue;
            };
            let ix = Index::new(&v);
            let local = Local {
                slots: 1 + rng.next(4) as u32,
                inflight: rng.next(5) as u32,
                queued: rng.next(2) as u32,
                warm: rng.next(2) == 0,
                exec_us: (rng.next(2) == 0).then(|| rng.next(20_000)),
            };
            let overridden = place_in(&ix, &r, Some(&local));
            let n = &mut v.nodes[me];
            (n.slots, n.inflight, n.queued) = (local.slots, local.inflight, local.queued);
            n.warm.remove(&r.function);
            if local.warm {
                n.warm.insert(r.function.clone());
            }
            v.exec.forget_node(&v.local.clone());
            if let Some(us) = local.exec_us {
                v.exec.insert(
                    &r.function,
                    &v.local.clone(),
                    crate::Estimate {
                        mean_us: us as f64,
                        samples: 1,
                    },
                );
            }
            // Only this function's estimate on the local node matters.
            assert_eq!(overridden, place(&v, &r), "{v:?} {r:?} {local:?}");
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
