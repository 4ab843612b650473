//! StateSim's topology files, read and checked, and the seed's network
//! model over them.
//!
//! The graph's vertices are the processing nodes (`.nodes`), the links
//! (`.links`) and the switches (any other name `.edges` gives a line of its
//! own); its directed edges are `.edges`' lines. A route minimises the sum
//! of its links' reciprocal capacities, that is its transfer time; as in
//! StateSim (v1.1.1), the route from `a` to `b` takes the links of the
//! shortest directed path from `b` to `a` (the published results depend on
//! it where uplink and downlink differ). A payload's transfer time is the
//! sum of its serialisation on each link of the route (store and forward,
//! no contention), plus the route's propagation delay: a link may give one
//! in an optional fifth column, `latency_ms` (Weft's extension; seed 003's
//! files have none, so its routes have none, as in StateSim).
//!
//! Unlike StateSim, which turns a misspelt name into a new switch and loops
//! forever on an unreachable pair, every name must have its own line in
//! `.edges`, and every node must reach every other: each a clear error.

use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

/// A processing node.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Its name.
    pub name: String,
    /// Operations per second: column 3, as StateSim reads it.
    pub speed: f64,
    /// Its hardware model (column 7).
    pub model: String,
    /// Whether it can be a client (StateSim: the Raspberry Pis and Jetsons).
    pub client: bool,
}

/// What a link is, as the file says (the model treats all alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    /// A node's own link.
    Node,
    /// A link shared by a LAN.
    Shared,
    /// Towards the core.
    Uplink,
    /// From the core.
    Downlink,
}

/// A link: a vertex of the graph with a capacity.
#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    /// Its name.
    pub name: String,
    /// Bits per second.
    pub capacity_bps: f64,
    /// Its kind.
    pub kind: LinkKind,
    /// One-way propagation delay, seconds (the optional fifth column, ms).
    pub latency_s: f64,
}

/// Why an input (a topology, a trace) cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line that is not what its file's format says.
    #[error("{}:{line}: {message}", path.display())]
    Line {
        /// The file.
        path: PathBuf,
        /// From 1.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// Two nodes with no route between them.
    #[error(
        "{}:{line}: node `{from}` cannot reach node `{to}` (line {to_line}) through {}: the graph is disconnected",
        path.display(),
        edges.display()
    )]
    Unreachable {
        /// The nodes file.
        path: PathBuf,
        /// The line of the node that cannot send.
        line: usize,
        /// The node that cannot send.
        from: String,
        /// The node it cannot reach.
        to: String,
        /// Its line.
        to_line: usize,
        /// The edges file, which has no route between them.
        edges: PathBuf,
    },
}

/// The hardware models StateSim knows, and whether each can be a client.
const MODELS: &[(&str, bool)] = &[
    ("server", false),
    ("nuci5", false),
    ("rpi3b+", true),
    ("nvidia_jetson_tx2", true),
];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Vertex {
    Node,
    /// Capacity, b/s, and one-way propagation delay, s.
    Link(f64, f64),
    Switch,
}

/// The graph's vertices as the files define them.
#[derive(Default)]
struct Vertices {
    by_name: HashMap<String, usize>,
    names: Vec<String>,
    kinds: Vec<Vertex>,
    /// Where each was defined.
    first_line: Vec<(PathBuf, usize)>,
}

impl Vertices {
    /// Adds `name`, defined at `path:line`; returns its index.
    fn define(
        &mut self,
        name: &str,
        v: Vertex,
        path: &Path,
        line: usize,
    ) -> Result<usize, InputError> {
        if let Some(&i) = self.by_name.get(name) {
            let (p, l) = &self.first_line[i];
            return Err(InputError::Line {
                path: path.to_path_buf(),
                line,
                message: format!("`{name}` is defined twice (first at {}:{l})", p.display()),
            });
        }
        let i = self.kinds.len();
        self.by_name.insert(name.to_string(), i);
        self.names.push(name.to_string());
        self.kinds.push(v);
        self.first_line.push((path.to_path_buf(), line));
        Ok(i)
    }
}

/// A topology: its nodes, links and switches, and the route between every
/// two nodes.
#[derive(Debug, Clone)]
pub struct Topology {
    nodes: Vec<Node>,
    links: Vec<Link>,
    by_name: HashMap<String, usize>,
    /// Per pair of nodes (`src * n + dst`): seconds per byte, seconds of
    /// propagation, and links.
    per_byte: Vec<f64>,
    latency: Vec<f64>,
    hops: Vec<u32>,
}

/// `name` trimmed, if it is one (not empty, no spaces).
fn named<'a>(what: &str, name: &'a str) -> Result<&'a str, String> {
    let name = name.trim();
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(format!("{what} name `{name}` is empty or has spaces"));
    }
    Ok(name)
}

/// `text` as a finite number above 0.
fn positive(text: &str) -> Option<f64> {
    text.trim()
        .parse()
        .ok()
        .filter(|x: &f64| x.is_finite() && *x > 0.0)
}

/// The text of `path`.
pub(crate) fn read(path: &Path) -> Result<String, InputError> {
    std::fs::read_to_string(path).map_err(|source| InputError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The lines of `text` that hold a record, with their numbers (from 1):
/// empty lines and `#` comments are skipped.
fn records(text: &str) -> Vec<(usize, String)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim().to_string()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// Seed 003's topologies, carried in the binary: `iiot` and `urban`.
const SEED_003: [(&str, &str, [&str; 3]); 2] = [
    (
        "iiot",
        "iiot.0",
        [
            include_str!("../../../data/statesim/iiot.0.nodes"),
            include_str!("../../../data/statesim/iiot.0.links"),
            include_str!("../../../data/statesim/iiot.0.edges"),
        ],
    ),
    (
        "urban",
        "urban_sensing.0",
        [
            include_str!("../../../data/statesim/urban_sensing.0.nodes"),
            include_str!("../../../data/statesim/urban_sensing.0.links"),
            include_str!("../../../data/statesim/urban_sensing.0.edges"),
        ],
    ),
];

impl Topology {
    /// Reads `DIR/STEM.nodes`, `.links` and `.edges`.
    pub fn load(dir: &Path, stem: &str) -> Result<Topology, InputError> {
        let file = |ext: &str| dir.join(format!("{stem}.{ext}"));
        Topology::from_files(&file("nodes"), &file("links"), &file("edges"))
    }

    /// Reads the three files of a topology.
    pub fn from_files(nodes: &Path, links: &Path, edges: &Path) -> Result<Topology, InputError> {
        let texts = [read(nodes)?, read(links)?, read(edges)?];
        Topology::parse([nodes, links, edges], [&texts[0], &texts[1], &texts[2]])
    }

    /// One of seed 003's topologies (`iiot`, `urban`), as the binary
    /// carries them (`data/statesim/`).
    pub fn seed003(name: &str) -> Option<Topology> {
        let (_, stem, texts) = SEED_003.iter().find(|(n, _, _)| *n == name)?;
        let path = |ext: &str| PathBuf::from(format!("data/statesim/{stem}.{ext}"));
        let paths = [path("nodes"), path("links"), path("edges")];
        Topology::parse([&paths[0], &paths[1], &paths[2]], *texts).ok()
    }

    /// A topology from the texts of its three files, `paths` naming them
    /// in errors.
    pub fn parse(paths: [&Path; 3], texts: [&str; 3]) -> Result<Topology, InputError> {
        let [nodes, links, edges] = paths;
        let [nodes_text, links_text, edges_text] = texts;
        let mut g = Vertices::default();
        let bad = |path: &Path, line: usize, message: String| InputError::Line {
            path: path.to_path_buf(),
            line,
            message,
        };
        let mut node_list = Vec::new();
        let mut node_lines = Vec::new();
        for (line, text) in records(nodes_text) {
            let f: Vec<&str> = text.split(';').collect();
            let [_, name, speed, _, _, _, model] = f[..] else {
                return Err(bad(
                    nodes,
                    line,
                    format!(
                        "{} fields; a node is `id;name;speed;memory;arch;class;model`",
                        f.len()
                    ),
                ));
            };
            let name = named("node", name).map_err(|m| bad(nodes, line, m))?;
            let speed = positive(speed).ok_or_else(|| {
                bad(
                    nodes,
                    line,
                    format!("speed `{speed}` of `{name}` is not a positive number"),
                )
            })?;
            let model = model.trim();
            let Some(&(_, client)) = MODELS.iter().find(|(m, _)| *m == model) else {
                let known: Vec<&str> = MODELS.iter().map(|(m, _)| *m).collect();
                return Err(bad(
                    nodes,
                    line,
                    format!(
                        "unknown model `{model}` of `{name}` (known: {})",
                        known.join(", ")
                    ),
                ));
            };
            g.define(name, Vertex::Node, nodes, line)?;
            node_lines.push(line);
            node_list.push(Node {
                name: name.to_string(),
                speed,
                model: model.to_string(),
                client,
            });
        }
        if node_list.is_empty() {
            return Err(bad(nodes, 1, "no nodes".to_string()));
        }

        let mut link_list = Vec::new();
        for (line, text) in records(links_text) {
            let f: Vec<&str> = text.split(';').collect();
            let (capacity, name, kind, latency) = match f[..] {
                [_, capacity, name, kind] => (capacity, name, kind, None),
                [_, capacity, name, kind, latency] => (capacity, name, kind, Some(latency)),
                _ => {
                    return Err(bad(
                        links,
                        line,
                        format!(
                            "{} fields; a link is `id;capacity_Mbps;name;type`, optionally `;latency_ms`",
                            f.len()
                        ),
                    ));
                }
            };
            let name = named("link", name).map_err(|m| bad(links, line, m))?;
            let mbps = positive(capacity).ok_or_else(|| {
                bad(
                    links,
                    line,
                    format!("capacity `{capacity}` of `{name}` is not a positive number of Mb/s"),
                )
            })?;
            let kind = match kind.trim() {
                "node" => LinkKind::Node,
                "shared" => LinkKind::Shared,
                "uplink" => LinkKind::Uplink,
                "downlink" => LinkKind::Downlink,
                other => {
                    return Err(bad(
                        links,
                        line,
                        format!(
                            "unknown type `{other}` of `{name}` (node, shared, uplink, downlink)"
                        ),
                    ));
                }
            };
            let latency_s = match latency {
                None => 0.0,
                Some(ms) => ms
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|ms| ms.is_finite() && (0.0..=60_000.0).contains(ms))
                    .ok_or_else(|| {
                        bad(
                            links,
                            line,
                            format!(
                                "latency `{ms}` of `{name}` is not a number of ms from 0 to 60000"
                            ),
                        )
                    })?
                    / 1e3,
            };
            let capacity_bps = mbps * 1e6;
            g.define(name, Vertex::Link(capacity_bps, latency_s), links, line)?;
            link_list.push(Link {
                name: name.to_string(),
                capacity_bps,
                kind,
                latency_s,
            });
        }

        // Each line: a vertex and the vertices it sends to. A name without a
        // node or link of its own is a switch, once it has a line.
        let rows = records(edges_text);
        let mut out: BTreeMap<usize, (usize, Vec<String>)> = BTreeMap::new();
        let mut named: Vec<(String, usize)> = Vec::new();
        for (line, text) in &rows {
            let mut tokens = text.split_whitespace();
            let (Some(source), Some(_)) = (tokens.next(), text.split_whitespace().nth(1)) else {
                return Err(bad(
                    edges,
                    *line,
                    "a vertex with no neighbours; a line is `vertex neighbour...`".to_string(),
                ));
            };
            let v = match g.by_name.get(source) {
                Some(&v) => v,
                None => g.define(source, Vertex::Switch, edges, *line)?,
            };
            if let Some((first, _)) = out.get(&v) {
                return Err(bad(
                    edges,
                    *line,
                    format!("`{source}` has a second line (the first is line {first})"),
                ));
            }
            let targets: Vec<String> = tokens.map(str::to_string).collect();
            if targets.iter().any(|t| t == source) {
                return Err(bad(edges, *line, format!("`{source}` lists itself")));
            }
            named.extend(targets.iter().map(|t| (t.clone(), *line)));
            out.insert(v, (*line, targets));
        }
        for (name, line) in &named {
            if !g.by_name.get(name).is_some_and(|v| out.contains_key(v)) {
                return Err(bad(
                    edges,
                    *line,
                    format!("`{name}` has no line of its own (a misspelt node, link or switch?)"),
                ));
            }
        }
        for (v, kind) in g.kinds.iter().enumerate() {
            if !out.contains_key(&v) && *kind != Vertex::Switch {
                let name = &g.names[v];
                let (p, l) = &g.first_line[v];
                return Err(bad(
                    p,
                    *l,
                    format!(
                        "`{name}` has no line in {}: it is connected to nothing",
                        edges.display()
                    ),
                ));
            }
        }
        let adjacency: Vec<Vec<usize>> = (0..g.kinds.len())
            .map(|v| {
                out.get(&v)
                    .map(|(_, ts)| {
                        ts.iter()
                            .filter_map(|t| g.by_name.get(t).copied())
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .collect();
        let vertices = &g.kinds;

        // Routes: from each node as the destination, the shortest directed
        // paths from it (edge u→v weighs w(u) + w(v), w = 2 / capacity for
        // a link, 0 otherwise); the route src→dst walks src's predecessors.
        let n = node_list.len();
        let weight = |v: usize| match vertices[v] {
            Vertex::Link(c, _) => 2.0 / c,
            _ => 0.0,
        };
        let mut per_byte = vec![0.0; n * n];
        let mut latency = vec![0.0; n * n];
        let mut hops = vec![0u32; n * n];
        for dst in 0..n {
            let pred = shortest_from(dst, &adjacency, weight);
            for src in (0..n).filter(|&s| s != dst) {
                let (mut secs, mut delay, mut links, mut at, mut steps) =
                    (0.0, 0.0, 0u32, src, 0usize);
                while at != dst {
                    let Some(next) = pred[at] else {
                        return Err(InputError::Unreachable {
                            path: nodes.to_path_buf(),
                            line: node_lines[src],
                            from: node_list[src].name.clone(),
                            to: node_list[dst].name.clone(),
                            to_line: node_lines[dst],
                            edges: edges.to_path_buf(),
                        });
                    };
                    at = next;
                    steps += 1;
                    if steps > vertices.len() {
                        break;
                    }
                    if let Vertex::Link(c, l) = vertices[at] {
                        secs += 8.0 / c;
                        delay += l;
                        links += 1;
                    }
                }
                per_byte[src * n + dst] = secs;
                latency[src * n + dst] = delay;
                hops[src * n + dst] = links;
            }
        }
        Ok(Topology {
            by_name: node_list
                .iter()
                .enumerate()
                .map(|(i, n)| (n.name.clone(), i))
                .collect(),
            nodes: node_list,
            links: link_list,
            per_byte,
            latency,
            hops,
        })
    }

    /// The processing nodes, in file order.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The links, in file order.
    pub fn links(&self) -> &[Link] {
        &self.links
    }

    /// The index of node `name`.
    pub fn node(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// Seconds to move `bytes` from node `src` to node `dst` (indices):
    /// the route's propagation delay plus the payload's serialisation on
    /// each of its links; 0 to itself.
    pub fn transfer_secs(&self, src: usize, dst: usize, bytes: u64) -> f64 {
        let at = src * self.nodes.len() + dst;
        self.per_byte[at] * bytes as f64 + self.latency[at]
    }

    /// The propagation delay from `src` to `dst` (indices), seconds: the
    /// sum of the route's links' latencies (0 where the file gives none).
    pub fn latency_secs(&self, src: usize, dst: usize) -> f64 {
        self.latency[src * self.nodes.len() + dst]
    }

    /// Bytes per second over the route from `src` to `dst` (indices), as
    /// its serialisation gives it; infinite to itself.
    pub fn bandwidth(&self, src: usize, dst: usize) -> f64 {
        1.0 / self.per_byte[src * self.nodes.len() + dst]
    }

    /// Links crossed from `src` to `dst` (indices).
    pub fn hops(&self, src: usize, dst: usize) -> u32 {
        self.hops[src * self.nodes.len() + dst]
    }

    /// The central node, where the seed keeps `edge` (in-edge) state: the
    /// one whose slowest 1 kB transfer to or from any node is the least;
    /// of equals (within a part in 10⁹: sums of the same links in another
    /// order), the first by name, as in StateSim.
    pub fn central(&self) -> usize {
        let n = self.nodes.len();
        let worst = |c: usize| {
            (0..n)
                .map(|t| {
                    self.transfer_secs(c, t, 1000)
                        .max(self.transfer_secs(t, c, 1000))
                })
                .fold(0.0, f64::max)
        };
        let mut by_name: Vec<usize> = (0..n).collect();
        by_name.sort_by(|a, b| self.nodes[*a].name.cmp(&self.nodes[*b].name));
        let mut best = (by_name[0], worst(by_name[0]));
        for &c in &by_name[1..] {
            let w = worst(c);
            if w < best.1 * (1.0 - 1e-9) {
                best = (c, w);
            }
        }
        best.0
    }

    /// [`Topology::transfer_secs`] and [`Topology::hops`] by name; `None`
    /// when either is not a node.
    pub fn transfer(&self, src: &str, dst: &str, bytes: u64) -> Option<(f64, u32)> {
        let (s, d) = (self.node(src)?, self.node(dst)?);
        Some((self.transfer_secs(s, d, bytes), self.hops(s, d)))
    }
}

impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let clients = self.nodes.iter().filter(|n| n.client).count();
        write!(
            f,
            "{} nodes ({clients} clients), {} links",
            self.nodes.len(),
            self.links.len()
        )
    }
}

/// Dijkstra from `from` over `adjacency`: each vertex's predecessor on its
/// shortest path from `from` (`None`: unreachable; `from` itself: `None`).
fn shortest_from(
    from: usize,
    adjacency: &[Vec<usize>],
    weight: impl Fn(usize) -> f64,
) -> Vec<Option<usize>> {
    /// A heap entry: distance (as ordered bits: all are non-negative) and
    /// vertex, smallest first.
    #[derive(PartialEq, Eq, PartialOrd, Ord)]
    struct At(std::cmp::Reverse<u64>, usize);
    let mut dist = vec![f64::INFINITY; adjacency.len()];
    let mut pred = vec![None; adjacency.len()];
    let mut heap = BinaryHeap::new();
    dist[from] = 0.0;
    heap.push(At(std::cmp::Reverse(0f64.to_bits()), from));
    while let Some(At(std::cmp::Reverse(d), u)) = heap.pop() {
        let d = f64::from_bits(d);
        if d > dist[u] {
            continue;
        }
        for &v in &adjacency[u] {
            let nd = d + weight(u) + weight(v);
            if nd < dist[v] {
                dist[v] = nd;
                pred[v] = Some(u);
                heap.push(At(std::cmp::Reverse(nd.to_bits()), v));
            }
        }
    }
    pred
}
