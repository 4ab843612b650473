//! The seed's topologies read as StateSim reads them, the network model's
//! figures over them, and every kind of bad file refused with its file and
//! line.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use weft_sim::{InputError, Topology};

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/statesim")
}

fn ms_per_mb(t: &Topology, a: &str, b: &str) -> (f64, u32) {
    let (secs, hops) = t.transfer(a, b, 1_000_000).unwrap();
    (secs * 1e3, hops)
}

#[test]
fn the_seeds_topologies_load_with_their_nodes_links_and_clients() {
    let iiot = Topology::load(&data(), "iiot.0").unwrap();
    assert_eq!(iiot.to_string(), "80 nodes (16 clients), 100 links");
    let urban = Topology::load(&data(), "urban_sensing.0").unwrap();
    assert_eq!(urban.to_string(), "123 nodes (108 clients), 140 links");
    // Column 3 is the speed, as StateSim reads it.
    let rpi = &iiot.nodes()[iiot.node("rpi3_0").unwrap()];
    assert_eq!((rpi.speed, rpi.client), (1_023_012_864.0, true));
    let server = &iiot.nodes()[iiot.node("server_0").unwrap()];
    assert_eq!((server.speed, server.client), (188e9, false));
    // Where the seed keeps in-edge state: the node nearest to all.
    assert_eq!(iiot.nodes()[iiot.central()].name, "nuc_0");
    assert_eq!(urban.nodes()[urban.central()].name, "server_0");
}

#[test]
fn transfers_add_each_links_serialisation_along_the_fastest_route() {
    let t = Topology::load(&data(), "iiot.0").unwrap();
    // Own link (1 Gb/s), the LAN's shared link (300 Mb/s), the neighbour's.
    let (ms, hops) = ms_per_mb(&t, "rpi3_0", "rpi3_1");
    assert_eq!(hops, 3);
    assert!((ms - (8.0 + 8000.0 / 300.0 + 8.0)).abs() < 1e-6, "{ms}");
    let (ms, hops) = ms_per_mb(&t, "rpi3_0", "server_0");
    assert_eq!(hops, 4);
    assert!((ms - 43.5).abs() < 0.1, "{ms}");
    // Another premises: through the LANs' 50 Mb/s up and 500 Mb/s down links.
    let (ms, hops) = ms_per_mb(&t, "rpi3_0", "rpi3_3");
    assert_eq!(hops, 6);
    assert!((ms - 245.3).abs() < 0.1, "{ms}");
    assert_eq!(t.transfer("rpi3_0", "rpi3_0", 1_000_000), Some((0.0, 0)));
    assert_eq!(t.transfer("rpi3_0", "nowhere", 1), None);
    // The IIoT network is symmetric; the urban one is not (its backhaul
    // uplinks are 25 Mb/s, its downlinks 125), and the route from a to b
    // takes the links of b's path to a, as StateSim's does.
    let n = t.nodes().len();
    for a in 0..n {
        for b in 0..n {
            let d = t.transfer_secs(a, b, 1000) - t.transfer_secs(b, a, 1000);
            assert!(d.abs() < 1e-12, "{a} {b}");
        }
    }
    let u = Topology::load(&data(), "urban_sensing.0").unwrap();
    let n = u.nodes().len();
    let asymmetric = (0..n)
        .flat_map(|a| (0..n).map(move |b| (a, b)))
        .filter(|&(a, b)| (u.transfer_secs(a, b, 1000) - u.transfer_secs(b, a, 1000)).abs() > 1e-6)
        .count();
    assert!(asymmetric > 0);
}

/// A topology of three files written into a fresh directory, named `t`.
struct Files {
    dir: tempfile::TempDir,
}

const NODES: &str = "0;a;4000;1;x86;sbc;rpi3b+\n1;b;8000;1;x86;server;server\n";
const LINKS: &str = "0;1000;la;node\n1;100;lb;node\n";
const EDGES: &str = "a la\nla a sw\nsw la lb\nlb sw b\nb lb\n";

impl Files {
    fn new(nodes: &str, links: &str, edges: &str) -> Files {
        let dir = tempfile::tempdir().unwrap();
        for (ext, text) in [("nodes", nodes), ("links", links), ("edges", edges)] {
            std::fs::write(dir.path().join(format!("t.{ext}")), text).unwrap();
        }
        Files { dir }
    }

    fn load(&self) -> Result<Topology, InputError> {
        Topology::load(self.dir.path(), "t")
    }

    /// The error's text, with the directory left out.
    fn error(&self) -> String {
        let e = self.load().unwrap_err().to_string();
        e.replace(&format!("{}/", self.dir.path().display()), "")
    }
}

#[test]
fn a_small_topology_routes_through_its_switch() {
    let t = Files::new(NODES, LINKS, EDGES).load().unwrap();
    let (secs, hops) = t.transfer("a", "b", 1_000_000).unwrap();
    assert_eq!(hops, 2);
    assert!((secs - (0.008 + 0.08)).abs() < 1e-9, "{secs}");
    // Comments and blank lines are skipped.
    let commented = format!("# two nodes\n\n{NODES}");
    assert!(Files::new(&commented, LINKS, EDGES).load().is_ok());
}

#[test]
fn bad_files_are_refused_naming_the_file_the_line_and_what_is_wrong() {
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "0;a;4000;1;x86;sbc;rpi3b+\n1;b;8000;1;server\n",
            LINKS,
            EDGES,
            "t.nodes:2: 5 fields; a node is `id;name;speed;memory;arch;class;model`",
        ),
        (
            "0;a;fast;1;x86;sbc;rpi3b+\n",
            LINKS,
            EDGES,
            "t.nodes:1: speed `fast` of `a` is not a positive number",
        ),
        (
            "0;a;4000;1;x86;sbc;pdp11\n",
            LINKS,
            EDGES,
            "t.nodes:1: unknown model `pdp11` of `a` (known: server, nuci5, rpi3b+, nvidia_jetson_tx2)",
        ),
        (
            "0;a;4000;1;x86;sbc;rpi3b+\n1;a;8000;1;x86;server;server\n",
            LINKS,
            EDGES,
            "t.nodes:2: `a` is defined twice (first at",
        ),
        (
            NODES,
            "0;-5;la;node\n",
            EDGES,
            "t.links:1: capacity `-5` of `la` is not a positive number of Mb/s",
        ),
        (
            NODES,
            "0;1000;la;wifi\n",
            EDGES,
            "t.links:1: unknown type `wifi` of `la` (node, shared, uplink, downlink)",
        ),
        (
            NODES,
            "0;1000;a;node\n",
            EDGES,
            "t.links:1: `a` is defined twice (first at",
        ),
        (
            NODES,
            LINKS,
            "a la\nla a sw\nsw la lb\nlb sw b\nb lb\nsw\n",
            "t.edges:6: a vertex with no neighbours",
        ),
        (
            NODES,
            LINKS,
            "a la\nla a sw\nsw la lbb\nlb sw b\nb lb\n",
            "t.edges:3: `lbb` has no line of its own (a misspelt node, link or switch?)",
        ),
        (
            NODES,
            LINKS,
            "a la\nla a sw\nsw la lb\nlb sw b\nb lb\nla a\n",
            "t.edges:6: `la` has a second line (the first is line 2)",
        ),
        (
            NODES,
            LINKS,
            "a la\nla a sw\nsw la lb\nlb sw\n",
            "t.nodes:2: `b` has no line in",
        ),
        (
            NODES,
            LINKS,
            // Two islands: a–la–sw, and lb–b.
            "a la\nla a sw\nsw la\nlb b\nb lb\n",
            "t.nodes:2: node `b` cannot reach node `a` (line 1) through t.edges: the graph is disconnected",
        ),
        (
            NODES,
            LINKS,
            "a la a\nla a sw\nsw la lb\nlb sw b\nb lb\n",
            "t.edges:1: `a` lists itself",
        ),
    ];
    for (nodes, links, edges, says) in cases {
        let e = Files::new(nodes, links, edges).error();
        assert!(e.contains(says), "{e}\n  should say: {says}");
    }
    // A missing file names itself.
    let e = Topology::load(&data(), "nowhere").unwrap_err().to_string();
    assert!(e.contains("nowhere.nodes"), "{e}");
}

#[test]
fn a_link_may_give_its_propagation_delay_in_a_fifth_column() {
    // Weft's extension: `la` 2 ms, `lb` 10 ms; the route a→b crosses both.
    let t = Files::new(NODES, "0;1000;la;node;2\n1;100;lb;node;10\n", EDGES)
        .load()
        .unwrap();
    let (a, b) = (t.node("a").unwrap(), t.node("b").unwrap());
    assert!((t.latency_secs(a, b) - 0.012).abs() < 1e-12);
    let (secs, hops) = t.transfer("a", "b", 1_000_000).unwrap();
    assert_eq!(hops, 2);
    assert!((secs - (0.012 + 0.008 + 0.08)).abs() < 1e-9, "{secs}");
    assert_eq!(t.transfer_secs(a, a, 1_000_000), 0.0);
    assert!((t.bandwidth(a, b) - 1e6 / 0.088).abs() < 1e-3);
    assert_eq!(t.links()[1].latency_s, 0.010);
    // Without the column, no delay: the seed's files are read as before.
    let plain = Files::new(NODES, LINKS, EDGES).load().unwrap();
    assert_eq!(plain.latency_secs(a, b), 0.0);
    for (links, says) in [
        (
            "0;1000;la;node;-1\n1;100;lb;node\n",
            "t.links:1: latency `-1` of `la` is not a number of ms from 0 to 60000",
        ),
        (
            "0;1000;la;node;2;x\n1;100;lb;node\n",
            "t.links:1: 6 fields; a link is `id;capacity_Mbps;name;type`, optionally `;latency_ms`",
        ),
    ] {
        let e = Files::new(NODES, links, EDGES).error();
        assert_eq!(e, says);
    }
}
