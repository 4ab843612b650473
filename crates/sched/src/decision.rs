//! What the policy returns: the node, why, and what it expects.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A hard constraint that can eliminate a node, in the order they are
/// checked (a node is counted under the first one it fails).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Constraint {
    /// The node is not up.
    Down,
    /// The request excludes it (a retry elsewhere).
    Excluded,
    /// It has no slots at all.
    NoCapacity,
    /// Its tier is not among the allowed ones.
    Tier,
    /// A required label is missing or differs.
    Labels,
    /// Running there would take the data out of the origin's site or tier.
    Privacy,
    /// It does not serve a key-value store the function declares.
    Store,
    /// It has no MQTT broker, and the function has MQTT triggers.
    Broker,
    /// Its topics do not cover one the function publishes on.
    Topic,
}

impl Constraint {
    /// Every constraint, in checking order.
    pub const ALL: [Constraint; 9] = [
        Constraint::Down,
        Constraint::Excluded,
        Constraint::NoCapacity,
        Constraint::Tier,
        Constraint::Labels,
        Constraint::Privacy,
        Constraint::Store,
        Constraint::Broker,
        Constraint::Topic,
    ];

    /// The snake_case name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Constraint::Down => "down",
            Constraint::Excluded => "excluded",
            Constraint::NoCapacity => "no_capacity",
            Constraint::Tier => "tier",
            Constraint::Labels => "labels",
            Constraint::Privacy => "privacy",
            Constraint::Store => "store",
            Constraint::Broker => "broker",
            Constraint::Topic => "topic",
        }
    }
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How many nodes each hard constraint eliminated (each node counted once,
/// under the first constraint it fails).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rejections {
    /// Nodes not up.
    pub down: u32,
    /// Nodes the request excludes.
    pub excluded: u32,
    /// Nodes with no slots.
    pub no_capacity: u32,
    /// Nodes of a tier not allowed.
    pub tier: u32,
    /// Nodes without a required label.
    pub labels: u32,
    /// Nodes outside the origin's site or tier.
    pub privacy: u32,
    /// Nodes without a declared store.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub store: u32,
    /// Nodes without an MQTT broker.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub broker: u32,
    /// Nodes whose topics do not cover one the function publishes on.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub topic: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A node a hard constraint ruled out, for `weft explain`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Excluded {
    /// The node.
    pub node: String,
    /// The first constraint it fails.
    pub constraint: Constraint,
    /// Which label, store or topic, where that says more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Rejections {
    /// The count for one constraint.
    pub fn get(&self, c: Constraint) -> u32 {
        match c {
            Constraint::Down => self.down,
            Constraint::Excluded => self.excluded,
            Constraint::NoCapacity => self.no_capacity,
            Constraint::Tier => self.tier,
            Constraint::Labels => self.labels,
            Constraint::Privacy => self.privacy,
            Constraint::Store => self.store,
            Constraint::Broker => self.broker,
            Constraint::Topic => self.topic,
        }
    }

    pub(crate) fn add(&mut self, c: Constraint) {
        let n = match c {
            Constraint::Down => &mut self.down,
            Constraint::Excluded => &mut self.excluded,
            Constraint::NoCapacity => &mut self.no_capacity,
            Constraint::Tier => &mut self.tier,
            Constraint::Labels => &mut self.labels,
            Constraint::Privacy => &mut self.privacy,
            Constraint::Store => &mut self.store,
            Constraint::Broker => &mut self.broker,
            Constraint::Topic => &mut self.topic,
        };
        *n = n.saturating_add(1);
    }

    /// Nodes eliminated in all.
    pub fn total(&self) -> u32 {
        Constraint::ALL
            .iter()
            .fold(0u32, |t, c| t.saturating_add(self.get(*c)))
    }
}

/// `"3 down, 2 privacy"`; `"none"` when nothing was rejected.
impl fmt::Display for Rejections {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for c in Constraint::ALL {
            let n = self.get(c);
            if n > 0 {
                if !first {
                    f.write_str(", ")?;
                }
                write!(f, "{n} {c}")?;
                first = false;
            }
        }
        if first {
            f.write_str("none")?;
        }
        Ok(())
    }
}

/// The expected completion time of a placement, µs, by component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cost {
    /// Waiting for a slot.
    pub queue_us: u64,
    /// Running.
    pub exec_us: u64,
    /// Round trip plus moving the request and response bytes.
    pub transfer_us: u64,
    /// Cold start (and artifact fetch) when nothing is warm there.
    pub cold_us: u64,
    /// Reaching the invocation's state from there: round trips to its
    /// home and its bytes, or moving it there (a stateful function's).
    #[serde(default, skip_serializing_if = "is_zero_us")]
    pub state_us: u64,
    /// Soft preferences: data away from the node, price, energy, and the
    /// excess over a latency target.
    pub penalty_us: u64,
}

impl Cost {
    /// The sum of the components (saturating).
    pub fn total(&self) -> u64 {
        self.queue_us
            .saturating_add(self.exec_us)
            .saturating_add(self.transfer_us)
            .saturating_add(self.cold_us)
            .saturating_add(self.state_us)
            .saturating_add(self.penalty_us)
    }
}

fn is_zero_us(x: &u64) -> bool {
    *x == 0
}

/// Why the node was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Reason {
    /// The request entered here, this node meets every constraint and has a
    /// free slot with nobody waiting: it runs here, without scoring the others.
    Local,
    /// The local node is eligible but busy (`inflight` of `slots` running,
    /// `queued` waiting): every eligible node was scored, the local one
    /// included, and the least expected completion won.
    LocalOverloaded {
        /// Running on the local node.
        inflight: u32,
        /// Waiting on the local node.
        queued: u32,
        /// The local node's slots.
        slots: u32,
    },
    /// The local node fails a hard constraint: the least expected completion
    /// among the others won.
    LocalIneligible {
        /// The first constraint it fails.
        constraint: Constraint,
    },
    /// The local node is eligible and idle, but the function's state lives
    /// elsewhere (reaching it from here would cost `state_us`): every
    /// eligible node was scored, the local one included, and the least
    /// expected completion won.
    StateElsewhere {
        /// The state term of the local node, µs.
        state_us: u64,
    },
    /// The request entered at another node (the origin): every eligible node
    /// was scored and the least expected completion won.
    Best,
    /// An actor's invocation: the eligible node that owns its key (first
    /// by rendezvous hashing), whatever the others' scores.
    Owner,
}

impl Reason {
    /// Its `kind`, as serialized (`local`, `local_overloaded`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            Reason::Local => "local",
            Reason::LocalOverloaded { .. } => "local_overloaded",
            Reason::LocalIneligible { .. } => "local_ineligible",
            Reason::StateElsewhere { .. } => "state_elsewhere",
            Reason::Best => "best",
            Reason::Owner => "owner",
        }
    }
}

/// Where to run one invocation, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// The chosen node.
    pub node: String,
    /// It is the deciding node.
    pub local: bool,
    /// Why it was chosen.
    pub reason: Reason,
    /// `breakdown.total()`, µs.
    pub expected_us: u64,
    /// The expected completion by term.
    pub breakdown: Cost,
    /// Eligible nodes. 0 on the local fast path ([`Reason::Local`]), which
    /// does not look at the other nodes.
    pub considered: u32,
    /// Nodes eliminated, per constraint. All zero on the local fast path.
    pub rejected: Rejections,
    /// The second-best eligible node and its expected completion, µs.
    pub runner_up: Option<(String, u64)>,
    /// With a latency target: whether the chosen node is expected to meet it
    /// (its time terms — queue, exec, transfer, cold and data distance —
    /// without price, energy or the over-target penalty).
    pub target_met: Option<bool>,
}

impl Decision {
    /// One line for people, e.g. `placed on edge-a2: local node overloaded
    /// (4/4 busy, 2 queued); least expected completion 10.0 ms (queue 0.0 +
    /// exec 9.0 + transfer 1.0) among 5 eligible; runner-up fog-1 11.0 ms`.
    pub fn explain(&self) -> String {
        let mut s = format!("placed on {}", self.node);
        if self.local {
            s.push_str(" (local)");
        }
        s.push_str(": ");
        match self.reason {
            Reason::Local => s.push_str("meets every constraint and has a free slot; expected "),
            Reason::LocalOverloaded {
                inflight,
                queued,
                slots,
            } => {
                s.push_str(&format!("local node overloaded ({inflight}/{slots} busy"));
                if queued > 0 {
                    s.push_str(&format!(", {queued} queued"));
                }
                s.push_str("); least expected completion ");
            }
            Reason::LocalIneligible { constraint } => {
                s.push_str(&format!(
                    "local node ineligible ({constraint}); least expected completion "
                ));
            }
            Reason::StateElsewhere { state_us } => s.push_str(&format!(
                "local node idle but its state is elsewhere (+{} ms from here); least expected completion ",
                ms(state_us)
            )),
            Reason::Best => s.push_str("least expected completion "),
            Reason::Owner => {
                s.push_str("owns the actor's key (first by rendezvous hashing); expected ")
            }
        }
        let b = &self.breakdown;
        s.push_str(&format!(
            "{} ms (queue {} + exec {} + transfer {}",
            ms(self.expected_us),
            ms(b.queue_us),
            ms(b.exec_us),
            ms(b.transfer_us)
        ));
        if b.cold_us > 0 {
            s.push_str(&format!(" + cold {}", ms(b.cold_us)));
        }
        if b.state_us > 0 {
            s.push_str(&format!(" + state {}", ms(b.state_us)));
        }
        if b.penalty_us > 0 {
            s.push_str(&format!(" + penalty {}", ms(b.penalty_us)));
        }
        s.push(')');
        if self.reason != Reason::Local {
            s.push_str(&format!(" among {} eligible", self.considered));
            let rejected = self.rejected.total();
            if rejected > 0 {
                s.push_str(&format!(" ({} rejected: {})", rejected, self.rejected));
            }
        }
        match self.target_met {
            Some(true) => s.push_str("; meets the latency target"),
            Some(false) => s.push_str("; misses the latency target"),
            None => {}
        }
        if let Some((node, us)) = &self.runner_up {
            s.push_str(&format!("; runner-up {node} {} ms", ms(*us)));
        }
        s
    }
}

/// µs as ms with one decimal, rounded half up, in integer arithmetic.
fn ms(us: u64) -> String {
    let tenths = us / 100 + u64::from(us % 100 >= 50);
    format!("{}.{}", tenths / 10, tenths % 10)
}

/// Why no node could be chosen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum PlaceError {
    /// Every node failed a hard constraint.
    #[error("no eligible node for function `{function}`: {} nodes rejected: {rejected}", rejected.total())]
    NoEligibleNode {
        /// The function.
        function: String,
        /// How many nodes each constraint ruled out.
        rejected: Rejections,
    },
    /// The request's origin is not in the view.
    #[error("origin node `{0}` is not in the view")]
    UnknownOrigin(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_kind_is_its_serialized_tag() {
        for r in [
            Reason::Local,
            Reason::LocalOverloaded {
                inflight: 1,
                queued: 2,
                slots: 1,
            },
            Reason::LocalIneligible {
                constraint: Constraint::Tier,
            },
            Reason::Best,
        ] {
            let v = serde_json::to_value(r).unwrap_or_default();
            assert_eq!(v["kind"], r.kind());
        }
    }

    #[test]
    fn ms_rounds_half_up() {
        assert_eq!(ms(0), "0.0");
        assert_eq!(ms(49), "0.0");
        assert_eq!(ms(50), "0.1");
        assert_eq!(ms(12_345), "12.3");
        assert_eq!(ms(12_350), "12.4");
        assert_eq!(ms(48_000), "48.0");
    }

    #[test]
    fn rejections_display_names_constraints() {
        let mut r = Rejections::default();
        assert_eq!(r.to_string(), "none");
        r.add(Constraint::Down);
        r.add(Constraint::Privacy);
        r.add(Constraint::Privacy);
        assert_eq!(r.to_string(), "1 down, 2 privacy");
        assert_eq!(r.total(), 3);
    }

    #[test]
    fn reason_json_is_tagged_snake_case() {
        let r = Reason::LocalIneligible {
            constraint: Constraint::NoCapacity,
        };
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(
            json,
            r#"{"kind":"local_ineligible","constraint":"no_capacity"}"#
        );
        assert_eq!(serde_json::from_str::<Reason>(&json).unwrap(), r);
        assert_eq!(
            serde_json::to_string(&Reason::Local).unwrap(),
            r#"{"kind":"local"}"#
        );
    }
}
