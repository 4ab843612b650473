//! Learned execution times per (function, node).

use serde::de::Deserializer;
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

/// Weight of a new sample in the moving average: `mean += α (sample − mean)`.
/// 0.2 follows a change of speed within about ten invocations while one
/// outlier moves the mean by a fifth of its excess.
pub const EWMA_ALPHA: f64 = 0.2;

/// Largest value a float term may contribute, µs (about 31 years): keeps
/// sums far from overflow.
const MAX_TERM_US: f64 = 1e15;

/// A float term in whole µs, rounded half away from zero; negative or NaN
/// count as 0, anything above about 31 years as 31 years.
pub(crate) fn to_us(x: f64) -> u64 {
    if x.is_nan() || x <= 0.0 {
        0
    } else {
        x.min(MAX_TERM_US).round() as u64
    }
}

/// The learned execution time of one function on one node.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Estimate {
    /// Exponentially weighted mean, µs ([`EWMA_ALPHA`]); the first sample sets it.
    pub mean_us: f64,
    /// Samples folded in so far.
    pub samples: u64,
}

impl Estimate {
    /// The mean rounded to whole µs, the unit the policy computes in. A
    /// negative or non-finite mean counts as 0.
    pub fn micros(&self) -> u64 {
        to_us(self.mean_us)
    }
}

/// Learned mean execution time in µs per (function, node), with sample counts.
///
/// Keyed by function, then by node name. The per-function table is a hash map
/// with a fixed (unseeded) hasher, so scoring 1,000 nodes costs 1,000 short
/// hashes, not 1,000 tree searches; nothing is ever read from it in hash
/// order (it serializes sorted by node name, and the only aggregate, the
/// function's mean, is an integer sum), so its layout never leaks into a
/// decision. Serialized as `{ function: { node: { mean_us, samples } } }`.
///
/// ```
/// let mut t = weft_sched::ExecTable::new();
/// t.observe("resize", "edge-a1", 10_000);
/// t.observe("resize", "edge-a1", 20_000);
/// assert_eq!(t.estimate("resize", "edge-a1").map(|e| e.micros()), Some(12_000));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ExecTable {
    functions: BTreeMap<String, PerNode>,
}

impl ExecTable {
    /// An empty table.
    pub fn new() -> ExecTable {
        ExecTable::default()
    }

    /// No estimate at all.
    pub fn is_empty(&self) -> bool {
        self.functions.values().all(PerNode::is_empty)
    }

    /// Folds one measured execution time into the (function, node) mean: the
    /// first sample sets it, later ones move it by [`EWMA_ALPHA`] of the
    /// difference. Pure arithmetic: the caller measured the sample.
    pub fn observe(&mut self, function: &str, node: &str, micros: u64) {
        let per_node = self.functions.entry(function.to_owned()).or_default();
        let sample = micros as f64;
        if per_node.get(node).is_some() {
            per_node.update(node, |e| {
                e.mean_us += EWMA_ALPHA * (sample - e.mean_us);
                e.samples = e.samples.saturating_add(1);
            });
        } else {
            per_node.insert(
                node,
                Estimate {
                    mean_us: sample,
                    samples: 1,
                },
            );
        }
    }

    /// Sets the (function, node) estimate outright, e.g. from stored
    /// statistics.
    pub fn insert(&mut self, function: &str, node: &str, estimate: Estimate) {
        self.functions
            .entry(function.to_owned())
            .or_default()
            .insert(node, estimate);
    }

    /// The estimate for `function` on `node`, if one was learned.
    pub fn estimate(&self, function: &str, node: &str) -> Option<Estimate> {
        self.functions.get(function)?.get(node).copied()
    }

    /// The function's mean over the nodes with an estimate, µs (integer mean
    /// of the rounded per-node means, so independent of their order).
    pub fn mean_us(&self, function: &str) -> Option<u64> {
        self.functions.get(function)?.mean_us()
    }

    /// Forgets every estimate for `node` (it left the mesh).
    pub fn forget_node(&mut self, node: &str) {
        for f in self.functions.values_mut() {
            f.remove(node);
        }
        self.functions.retain(|_, f| !f.is_empty());
    }

    /// Every function with its estimates, by name.
    pub(crate) fn functions(&self) -> impl Iterator<Item = (&str, &PerNode)> {
        self.functions.iter().map(|(f, p)| (f.as_str(), p))
    }
}

/// One function's estimates by node name, and the sum of their rounded
/// means (kept up to date, so the function's mean costs a division).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct PerNode {
    by_node: HashMap<String, Estimate, BuildHasherDefault<FxHasher>>,
    sum_us: u128,
}

impl PerNode {
    pub(crate) fn get(&self, node: &str) -> Option<&Estimate> {
        self.by_node.get(node)
    }

    /// Every estimate, by node (in hash order: callers must not depend on
    /// it).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &Estimate)> {
        self.by_node.iter().map(|(n, e)| (n.as_str(), e))
    }

    fn is_empty(&self) -> bool {
        self.by_node.is_empty()
    }

    fn insert(&mut self, node: &str, e: Estimate) {
        self.sum_us += u128::from(e.micros());
        if let Some(old) = self.by_node.insert(node.to_owned(), e) {
            self.sum_us -= u128::from(old.micros());
        }
    }

    /// Replaces one estimate in place, keeping the sum.
    fn update(&mut self, node: &str, f: impl FnOnce(&mut Estimate)) {
        if let Some(e) = self.by_node.get_mut(node) {
            let before = u128::from(e.micros());
            f(e);
            self.sum_us = self.sum_us - before + u128::from(e.micros());
        }
    }

    fn remove(&mut self, node: &str) {
        if let Some(old) = self.by_node.remove(node) {
            self.sum_us -= u128::from(old.micros());
        }
    }

    pub(crate) fn mean_us(&self) -> Option<u64> {
        let n = self.by_node.len() as u128;
        if n == 0 {
            return None;
        }
        Some((self.sum_us / n) as u64)
    }
}

impl Serialize for PerNode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut sorted: Vec<(&String, &Estimate)> = self.by_node.iter().collect();
        sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut map = s.serialize_map(Some(sorted.len()))?;
        for (k, v) in sorted {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for PerNode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<PerNode, D::Error> {
        let sorted = BTreeMap::<String, Estimate>::deserialize(d)?;
        let mut p = PerNode::default();
        for (node, e) in sorted {
            p.insert(&node, e);
        }
        Ok(p)
    }
}

/// The Firefox/rustc hash: fixed, no seed, a multiply per 8 bytes. Node names
/// come from the operator's mesh, not from callers, so flooding is not a
/// concern here; determinism and speed are.
#[derive(Default)]
pub(crate) struct FxHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, mut bytes: &[u8]) {
        while let Some((chunk, rest)) = bytes.split_first_chunk::<8>() {
            self.add(u64::from_le_bytes(*chunk));
            bytes = rest;
        }
        if let Some((chunk, rest)) = bytes.split_first_chunk::<4>() {
            self.add(u64::from(u32::from_le_bytes(*chunk)));
            bytes = rest;
        }
        for &b in bytes {
            self.add(u64::from(b));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ewma_first_sample_sets_then_moves_by_alpha() {
        let mut t = ExecTable::new();
        t.observe("f", "n", 1_000);
        assert_eq!(
            t.estimate("f", "n"),
            Some(Estimate {
                mean_us: 1_000.0,
                samples: 1
            })
        );
        t.observe("f", "n", 2_000);
        let e = t.estimate("f", "n").unwrap();
        assert_eq!(e.samples, 2);
        assert_eq!(e.micros(), 1_200);
        t.observe("f", "n", 2_000);
        assert_eq!(t.estimate("f", "n").unwrap().micros(), 1_360);
    }

    #[test]
    fn function_mean_is_integer_and_order_free() {
        let mut a = ExecTable::new();
        let mut b = ExecTable::new();
        let samples = [("n1", 1_001), ("n2", 2_002), ("n3", 3_004)];
        for (n, us) in samples {
            a.observe("f", n, us);
        }
        for (n, us) in samples.iter().rev() {
            b.observe("f", n, *us);
        }
        assert_eq!(a, b);
        assert_eq!(a.mean_us("f"), Some(2_002));
        assert_eq!(a.mean_us("g"), None);
    }

    #[test]
    fn serializes_sorted_and_round_trips() {
        let mut t = ExecTable::new();
        for n in ["zeta", "alpha", "mid"] {
            t.observe("f", n, 10);
        }
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(
            json,
            r#"{"f":{"alpha":{"mean_us":10.0,"samples":1},"mid":{"mean_us":10.0,"samples":1},"zeta":{"mean_us":10.0,"samples":1}}}"#
        );
        let back: ExecTable = serde_json::from_str(&json).unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn running_sum_matches_a_fresh_table() {
        let mut live = ExecTable::new();
        for i in 0..500u64 {
            live.observe("f", &format!("n{}", i % 7), 1_000 + (i * 7_919) % 5_000);
        }
        live.forget_node("n3");
        let json = serde_json::to_string(&live).unwrap();
        let fresh: ExecTable = serde_json::from_str(&json).unwrap();
        // PartialEq compares the running sum too.
        assert_eq!(fresh, live);
        let by_hand: u64 = (0..7)
            .filter(|i| *i != 3)
            .map(|i| live.estimate("f", &format!("n{i}")).unwrap().micros())
            .sum();
        assert_eq!(live.mean_us("f"), Some(by_hand / 6));
    }

    #[test]
    fn forget_node_drops_its_estimates() {
        let mut t = ExecTable::new();
        t.observe("f", "a", 10);
        t.observe("g", "a", 10);
        t.observe("g", "b", 30);
        t.forget_node("a");
        assert_eq!(t.estimate("f", "a"), None);
        assert_eq!(t.mean_us("g"), Some(30));
        assert!(!t.is_empty());
        t.forget_node("b");
        assert!(t.is_empty());
    }
}
