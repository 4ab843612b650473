//! What travels between nodes, and the checks every message from a peer
//! passes before it is believed.

use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use weft_sched::Tier;

/// Version of the wire format; a peer speaking another is refused.
pub const WIRE_VERSION: u32 = 2;

/// Largest heartbeat accepted.
pub const MAX_HEARTBEAT: usize = 256 << 10;
/// Most labels, warm functions or stores a heartbeat may list.
pub const MAX_LIST: usize = 4096;
/// Most concurrent invocations a node may claim to run. A claim above this
/// is not capacity, it is a lie or a bug; the heartbeat is refused.
pub const MAX_SLOTS: u32 = 1_000_000;
/// Longest execution time a profile may hold, µs (what fits in its u32
/// samples, about 71 minutes).
pub const MAX_EXEC_US: u64 = u32::MAX as u64;
/// Longest label key or value, node or function name in a message.
pub const MAX_TOKEN: usize = 253;

/// A node's announcement of itself, published every beat on
/// `weft.hb.<name>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// Wire format version.
    pub v: u32,
    /// The node's name; must equal the subject's last token.
    pub name: String,
    /// Random, new at every start: a restarted node is told apart from a
    /// late beat of its previous life.
    pub incarnation: u64,
    /// Where the node sits in the continuum.
    pub tier: Tier,
    /// `site`, `arch`, … as given by `--label`.
    pub labels: BTreeMap<String, String>,
    /// Concurrent invocations it runs at most.
    pub slots: u32,
    /// Running now.
    pub inflight: u32,
    /// Waiting for a slot now.
    pub queued: u32,
    /// Functions with a warm instance.
    pub warm: BTreeSet<String>,
    /// Key-value store labels it serves.
    pub stores: BTreeSet<String>,
    /// Its round trip to each of those stores, µs, as it measures them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub store_rtt_us: BTreeMap<String, u64>,
    /// An MQTT broker is configured there.
    #[serde(default)]
    pub broker: bool,
    /// Topic patterns its functions may use (empty: every topic).
    #[serde(default)]
    pub topics: Vec<String>,
    /// When this incarnation started, ms since the UNIX epoch (by its
    /// clock): of two nodes that claim one name, the later one yields.
    #[serde(default)]
    pub started_ms: u64,
    /// Relative price of a second of execution.
    pub cost: f64,
    /// Relative energy of a second of execution.
    pub energy: f64,
    /// Mean execution time of functions it ran, µs.
    pub exec_us: BTreeMap<String, u64>,
    /// The execution profiles of functions it ran (their last runs there),
    /// µs: p50, p90, p99 and the longest, in that order.
    #[serde(default)]
    pub exec_profile: BTreeMap<String, [u64; 4]>,
    /// The sender's clock, ms since the UNIX epoch.
    pub sent_ms: u64,
    /// Its HTTP address, for operators (`weft nodes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
}

/// Why a peer's message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Not the format.
    #[error("malformed: {0}")]
    Malformed(String),
    /// A claim that cannot be true.
    #[error("implausible: {0}")]
    Implausible(String),
    /// Its clock is too far from ours.
    #[error("clock off by {off_ms} ms (more than the {max_ms} ms allowed)")]
    ClockSkew {
        /// How far, signed (positive: the peer is ahead).
        off_ms: i64,
        /// The bound.
        max_ms: u64,
    },
}

pub use weft_manifest::valid_node_name;

fn valid_token(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_TOKEN && !s.chars().any(char::is_control)
}

impl Heartbeat {
    /// Decodes and checks a heartbeat received on `subject_node`'s subject,
    /// at local time `now_ms`.
    pub fn parse(
        subject_node: &str,
        payload: &[u8],
        now_ms: u64,
        max_skew_ms: u64,
    ) -> Result<Heartbeat, Refused> {
        if payload.len() > MAX_HEARTBEAT {
            return Err(Refused::Malformed(format!(
                "heartbeat of {} bytes (at most {MAX_HEARTBEAT})",
                payload.len()
            )));
        }
        let hb: Heartbeat =
            serde_json::from_slice(payload).map_err(|e| Refused::Malformed(e.to_string()))?;
        if hb.v != WIRE_VERSION {
            return Err(Refused::Malformed(format!(
                "wire version {} (this node speaks {WIRE_VERSION})",
                hb.v
            )));
        }
        if hb.name != subject_node {
            return Err(Refused::Malformed(format!(
                "heartbeat names `{}` on the subject of `{subject_node}`",
                hb.name
            )));
        }
        if !valid_node_name(&hb.name) {
            return Err(Refused::Malformed(format!(
                "invalid node name `{}`",
                hb.name
            )));
        }
        if hb.slots == 0 || hb.slots > MAX_SLOTS {
            return Err(Refused::Implausible(format!(
                "claims {} slots (1..={MAX_SLOTS})",
                hb.slots
            )));
        }
        if hb.inflight > hb.slots {
            return Err(Refused::Implausible(format!(
                "claims {} running on {} slots",
                hb.inflight, hb.slots
            )));
        }
        for (what, n) in [
            ("labels", hb.labels.len()),
            ("warm functions", hb.warm.len()),
            ("stores", hb.stores.len()),
            ("store round trips", hb.store_rtt_us.len()),
            ("execution times", hb.exec_us.len()),
            ("execution profiles", hb.exec_profile.len()),
        ] {
            if n > MAX_LIST {
                return Err(Refused::Implausible(format!(
                    "lists {n} {what} (at most {MAX_LIST})"
                )));
            }
        }
        if hb.topics.len() > MAX_LIST {
            return Err(Refused::Implausible(format!(
                "lists {} topics (at most {MAX_LIST})",
                hb.topics.len()
            )));
        }
        let tokens = hb
            .labels
            .iter()
            .flat_map(|(k, v)| [k, v])
            .chain(&hb.warm)
            .chain(&hb.stores)
            .chain(hb.store_rtt_us.keys())
            .chain(&hb.topics)
            .chain(hb.exec_us.keys())
            .chain(hb.exec_profile.keys());
        for t in tokens {
            if !valid_token(t) {
                return Err(Refused::Malformed(format!("invalid name or label `{t}`")));
            }
        }
        for (f, p) in &hb.exec_profile {
            if !p.is_sorted() || p[3] > MAX_EXEC_US {
                return Err(Refused::Implausible(format!(
                    "profile of `{f}` is not p50 <= p90 <= p99 <= max within {MAX_EXEC_US} us: {p:?}"
                )));
            }
        }
        for (what, x) in [("cost", hb.cost), ("energy", hb.energy)] {
            if !x.is_finite() || !(0.0..=1e6).contains(&x) {
                return Err(Refused::Implausible(format!("{what} of {x}")));
            }
        }
        let off_ms = hb.sent_ms as i64 - now_ms as i64;
        if off_ms.unsigned_abs() > max_skew_ms {
            return Err(Refused::ClockSkew {
                off_ms,
                max_ms: max_skew_ms,
            });
        }
        Ok(hb)
    }
}

/// A remote invocation: what the callee needs besides the body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallMeta {
    /// Chosen by the caller; names the call in chunks and cancels.
    pub id: String,
    /// The calling node.
    pub from: String,
    /// The function.
    pub function: String,
    /// How the invocation started (`http`, `call`, `async`, …).
    pub trigger: String,
    /// The trigger's subject (route, topic, caller).
    #[serde(default)]
    pub subject: String,
    /// Delivery attempt, from 1.
    #[serde(default = "one")]
    pub attempt: u32,
    /// Functions on the synchronous call stack above this one, outermost
    /// first (their slots are held: a call back to one is a cycle).
    #[serde(default)]
    pub chain: Vec<String>,
    /// Functions that started the chain asynchronously, outermost first
    /// (no slot held: counted toward depth only).
    #[serde(default)]
    pub ancestors: Vec<String>,
    /// The version the caller resolved (0: whichever is active).
    #[serde(default)]
    pub version: u32,
    /// Time left to the caller, ms: the callee's deadline.
    pub timeout_ms: u64,
    /// Time left, µs when sent, to the deadline of the invocation as the
    /// node it entered set it: the callee runs by it when it is earlier
    /// than its own. Absent from older nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_us: Option<u64>,
    /// For HTTP components: the request besides its body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpMeta>,
    /// Bytes of the whole body.
    pub body_len: u64,
    /// Messages the body takes, this one included.
    pub chunks: u32,
    /// The key whose state a stateful function runs with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_key: Option<String>,
}

fn one() -> u32 {
    1
}

/// An HTTP request besides its body, as a component on another node sees
/// it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpMeta {
    /// The method.
    pub method: String,
    /// Path and query, as the component sees them.
    pub path: String,
    /// The headers (the host among them), in order.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
}

/// The callee's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplyMeta {
    /// The node that ran it.
    pub node: String,
    /// `Ok` or the error.
    pub outcome: ReplyOutcome,
    /// Bytes of the whole body.
    pub body_len: u64,
    /// Messages the body takes, this one included.
    pub chunks: u32,
}

/// How a remote invocation ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplyOutcome {
    /// It ran; the body is its response.
    Ok {
        /// Invocation id on the callee.
        invocation: String,
        /// Version that ran.
        version: u32,
        /// Whether it was a cold start.
        cold_start: bool,
        /// Wall time of the run, µs.
        wall_us: u64,
        /// CPU time, µs.
        cpu_us: u64,
        /// HTTP status for HTTP components (200 for commands).
        status: u16,
        /// Response headers of HTTP components.
        #[serde(default)]
        headers: Vec<(String, String)>,
    },
    /// It did not run, or failed.
    Err {
        /// The stable error code (`weft_codes::Code`, as text: a code a
        /// newer peer knows and this one does not stays readable).
        code: String,
        /// What happened.
        message: String,
    },
}

/// Frames a first message: a 4-byte big-endian length, the JSON meta, then
/// the first chunk of the body.
pub fn frame<T: Serialize>(meta: &T, first: &[u8]) -> Bytes {
    let json = serde_json::to_vec(meta).unwrap_or_default();
    let mut b = BytesMut::with_capacity(4 + json.len() + first.len());
    b.extend_from_slice(&(json.len() as u32).to_be_bytes());
    b.extend_from_slice(&json);
    b.extend_from_slice(first);
    b.freeze()
}

/// Largest meta accepted in a framed message.
pub const MAX_META: usize = 64 << 10;

/// Splits a framed message into its meta and its first chunk.
pub fn unframe<T: for<'de> Deserialize<'de>>(msg: &Bytes) -> Result<(T, Bytes), Refused> {
    let Some(len) = msg.get(..4) else {
        return Err(Refused::Malformed("message shorter than its frame".into()));
    };
    let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
    if len > MAX_META || msg.len() < 4 + len {
        return Err(Refused::Malformed(format!(
            "frame of {len} bytes in a message of {}",
            msg.len()
        )));
    }
    let meta = serde_json::from_slice(&msg[4..4 + len])
        .map_err(|e| Refused::Malformed(format!("meta: {e}")))?;
    Ok((meta, msg.slice(4 + len..)))
}

/// How many chunks a body of `len` bytes takes at `chunk` bytes each (at
/// least one: the first message always goes).
pub fn chunks_for(len: usize, chunk: usize) -> u32 {
    len.div_ceil(chunk.max(1)).max(1) as u32
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn hb() -> Heartbeat {
        Heartbeat {
            v: WIRE_VERSION,
            name: "edge-a1".into(),
            incarnation: 7,
            tier: Tier::Edge,
            labels: [("site".to_string(), "a".to_string())].into(),
            slots: 8,
            inflight: 1,
            queued: 0,
            warm: BTreeSet::new(),
            stores: ["default".to_string()].into(),
            store_rtt_us: [("default".to_string(), 3)].into(),
            cost: 1.0,
            energy: 1.0,
            exec_us: BTreeMap::new(),
            exec_profile: [("resize".to_string(), [700, 900, 1200, 1300])].into(),
            sent_ms: 1_000_000,
            http: None,
            broker: false,
            topics: Vec::new(),
            started_ms: 0,
        }
    }

    fn parse(h: &Heartbeat) -> Result<Heartbeat, Refused> {
        Heartbeat::parse(
            "edge-a1",
            &serde_json::to_vec(h).unwrap(),
            1_000_500,
            10_000,
        )
    }

    #[test]
    fn good_heartbeat_parses() {
        assert_eq!(parse(&hb()).unwrap(), hb());
    }

    #[test]
    fn implausible_profiles_are_refused() {
        for p in [[900, 700, 1200, 1300], [1, 2, 3, MAX_EXEC_US + 1]] {
            let mut h = hb();
            h.exec_profile.insert("resize".into(), p);
            let e = parse(&h).unwrap_err();
            assert!(matches!(e, Refused::Implausible(_)), "{e}");
            assert!(e.to_string().contains("profile of `resize`"), "{e}");
        }
        let mut h = hb();
        h.exec_profile.insert(String::new(), [1, 1, 1, 1]);
        assert!(matches!(parse(&h).unwrap_err(), Refused::Malformed(_)));
        // A peer that sends none (an older one) is fine.
        let mut v = serde_json::to_value(hb()).unwrap();
        v.as_object_mut().unwrap().remove("exec_profile");
        let old = Heartbeat::parse(
            "edge-a1",
            &serde_json::to_vec(&v).unwrap(),
            1_000_500,
            10_000,
        )
        .unwrap();
        assert!(old.exec_profile.is_empty());
    }

    #[test]
    fn bad_heartbeats_are_refused_with_the_reason() {
        let e = Heartbeat::parse("edge-a1", b"{not json", 0, 10).unwrap_err();
        assert!(matches!(e, Refused::Malformed(_)), "{e}");
        let mut h = hb();
        h.name = "other".into();
        assert!(parse(&h).unwrap_err().to_string().contains("names `other`"));
        let mut h = hb();
        h.slots = u32::MAX;
        assert!(matches!(parse(&h).unwrap_err(), Refused::Implausible(_)));
        let mut h = hb();
        h.inflight = 9;
        assert!(
            parse(&h)
                .unwrap_err()
                .to_string()
                .contains("9 running on 8")
        );
        let mut h = hb();
        h.cost = f64::NAN;
        // NaN does not survive JSON; a negative cost does.
        h.cost = -1.0;
        assert!(parse(&h).unwrap_err().to_string().contains("cost"));
        let mut h = hb();
        h.sent_ms = 1_000_500 + 60_000;
        assert_eq!(
            parse(&h).unwrap_err(),
            Refused::ClockSkew {
                off_ms: 60_000,
                max_ms: 10_000
            }
        );
        let mut h = hb();
        h.v = 99;
        assert!(
            parse(&h)
                .unwrap_err()
                .to_string()
                .contains("wire version 99")
        );
        let mut h = hb();
        h.labels.insert("x\n".into(), "y".into());
        assert!(matches!(parse(&h).unwrap_err(), Refused::Malformed(_)));
        let big = vec![b' '; MAX_HEARTBEAT + 1];
        assert!(Heartbeat::parse("edge-a1", &big, 0, 10).is_err());
    }

    #[test]
    fn frames_round_trip_and_reject_lies() {
        let meta = ReplyMeta {
            node: "n".into(),
            outcome: ReplyOutcome::Err {
                code: "x".into(),
                message: "m".into(),
            },
            body_len: 3,
            chunks: 1,
        };
        let f = frame(&meta, b"abc");
        let (m, body): (ReplyMeta, Bytes) = unframe(&f).unwrap();
        assert_eq!((m, &body[..]), (meta, &b"abc"[..]));
        assert!(unframe::<ReplyMeta>(&Bytes::from_static(b"\0\0")).is_err());
        assert!(unframe::<ReplyMeta>(&Bytes::from_static(b"\xff\xff\xff\xffabc")).is_err());
        assert!(unframe::<ReplyMeta>(&Bytes::from_static(b"\0\0\0\x02{}")).is_err());
    }

    #[test]
    fn node_names() {
        assert!(valid_node_name("edge-a1"));
        for bad in ["", "-a", "a-", "A", "a.b", "a*", &"x".repeat(64)] {
            assert!(!valid_node_name(bad), "{bad}");
        }
        assert_eq!(chunks_for(0, 10), 1);
        assert_eq!(chunks_for(10, 10), 1);
        assert_eq!(chunks_for(11, 10), 2);
    }
}
