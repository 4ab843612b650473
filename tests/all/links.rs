//! Nodes joined over a WAN link: a `nats-server` hub with JetStream, a leaf
//! `nats-server` behind a [`Link`] (latency, cuts), and `weft` nodes on each.

use crate::harness::{Node, eventually};
use crate::servers::{Link, Nats};
use serde_json::Value;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(30);

/// A TCP server echoing every byte back, on a loopback port.
fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let _ = conn.set_nodelay(true);
                let mut back = conn.try_clone().unwrap();
                let _ = std::io::copy(&mut conn, &mut back);
            });
        }
    });
    addr
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Sends `payload` and reads it back; returns what came back and how long
/// the round trip took. A writer thread sends while this reads, so payloads
/// larger than the socket buffers do not deadlock.
fn round_trip(s: &mut TcpStream, payload: &[u8]) -> (Vec<u8>, Duration) {
    let start = Instant::now();
    let mut w = s.try_clone().unwrap();
    let out = payload.to_vec();
    let writer = std::thread::spawn(move || w.write_all(&out).unwrap());
    let mut back = vec![0u8; payload.len()];
    s.read_exact(&mut back).unwrap();
    let took = start.elapsed();
    writer.join().unwrap();
    (back, took)
}

/// Whether the connection was closed under us: EOF or a reset, not a timeout.
fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 16];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
    }
}

#[test]
fn link_adds_latency_and_cuts() {
    let link = Link::new(echo_server());
    let mut s = connect(link.addr());
    let (back, fast) = round_trip(&mut s, b"ping");
    assert_eq!(back, b"ping");

    link.set_latency(Duration::from_millis(20));
    let (back, slow) = round_trip(&mut s, b"ping again");
    assert_eq!(back, b"ping again");
    assert!(
        slow >= Duration::from_millis(40),
        "round trip with 20 ms each way took {slow:?} (without: {fast:?})"
    );
    // A payload larger than a chunk and the socket buffers arrives intact.
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let (back, _) = round_trip(&mut s, &big);
    assert!(back == big, "the payload came back changed");

    // Cut: the open connection ends, a new one is closed at once.
    assert!(!link.is_cut());
    link.cut();
    assert!(link.is_cut());
    assert!(closed(&mut s), "the open connection survived the cut");
    let mut again = connect(link.addr());
    assert!(
        closed(&mut again),
        "a new connection got through a cut link"
    );

    // Restored: new connections work again, still with the latency.
    link.restore();
    assert!(!link.is_cut());
    let mut s = connect(link.addr());
    let (back, took) = round_trip(&mut s, b"back");
    assert_eq!(back, b"back");
    assert!(took >= Duration::from_millis(40), "{took:?}");
    link.set_latency(Duration::ZERO);
    let (back, _) = round_trip(&mut s, b"fast again");
    assert_eq!(back, b"fast again");
}

/// `up` of node `name` as `node` sees the fabric, if it sees it at all.
fn up(node: &Node, name: &str) -> Option<bool> {
    let v = node.json(&["nodes"]);
    v["nodes"].as_array()?.iter().find(|n| n["name"] == name)?["up"].as_bool()
}

fn functions(node: &Node) -> Vec<String> {
    let v: Value = node.json(&["ls"]);
    v["functions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["name"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn weft_nodes_on_a_leaf_and_the_hub_see_each_other() {
    let hub = Nats::hub();
    let link = Link::new(hub.leaf_addr());
    let leaf = Nats::leaf(&link.addr().to_string());
    leaf.wait_leaf_connected();

    let cloud = Node::start_args(&[
        "--fabric",
        &hub.url(),
        "--tier",
        "cloud",
        "--node-name",
        "cloud-1",
    ]);
    let edge = Node::start_args(&[
        "--fabric",
        &leaf.url(),
        "--tier",
        "edge",
        "--node-name",
        "edge-a",
        "--label",
        "site=a",
    ]);
    let logs = || {
        format!(
            "\nedge log:\n{}\ncloud log:\n{}\nleaf log:\n{}\nhub log:\n{}",
            edge.log(),
            cloud.log(),
            leaf.log(),
            hub.log()
        )
    };

    // Heartbeats cross the leaf connection both ways.
    assert!(
        eventually(LONG, || up(&edge, "cloud-1") == Some(true)
            && up(&edge, "edge-a") == Some(true)
            && up(&cloud, "edge-a") == Some(true)),
        "the nodes do not see each other up: edge sees {}, cloud sees {}{}",
        edge.json(&["nodes"]),
        cloud.json(&["nodes"]),
        logs()
    );
    let nodes = edge.json(&["nodes"]);
    let tier = |name: &str| {
        nodes["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == name)
            .map(|n| n["tier"].clone())
    };
    assert_eq!(tier("cloud-1"), Some("cloud".into()), "{nodes}");
    assert_eq!(tier("edge-a"), Some("edge".into()), "{nodes}");

    // A deploy on the edge goes to the registry in the hub's JetStream,
    // through the leaf, and reaches the cloud node.
    assert!(
        eventually(LONG, || edge.json(&["nodes"])["registry_joined"] == true),
        "the edge node did not join the registry: {}{}",
        edge.json(&["nodes"]),
        logs()
    );
    edge.deploy("echo", "echo.wasm", &[]);
    assert!(
        eventually(LONG, || functions(&cloud).contains(&"echo".to_string())),
        "the cloud node does not list `echo`: {}{}",
        cloud.json(&["ls"]),
        logs()
    );

    // The WAN link drops: the edge marks the cloud node down and keeps
    // serving what it has.
    link.cut();
    assert!(
        eventually(LONG, || up(&edge, "cloud-1") == Some(false)),
        "the edge node still sees cloud-1 up after the cut: {}{}",
        edge.json(&["nodes"]),
        logs()
    );
    assert_eq!(edge.ok(&["invoke", "echo", "--data", "hi"]), "hi");

    // The link comes back: the leaf rejoins and cloud-1 is up again.
    link.restore();
    leaf.wait_leaf_connected();
    assert!(
        eventually(LONG, || up(&edge, "cloud-1") == Some(true)
            && up(&cloud, "edge-a") == Some(true)),
        "cloud-1 is not up again after the link came back: edge sees {}{}",
        edge.json(&["nodes"]),
        logs()
    );
}

#[test]
fn a_restarted_hub_keeps_the_registry() {
    let mut hub = Nats::hub();
    let url = hub.url();
    let fabric =
        |name: &str| Node::start_args(&["--fabric", &url, "--tier", "cloud", "--node-name", name]);
    let first = fabric("cloud-1");
    assert!(
        eventually(LONG, || first.json(&["nodes"])["registry_joined"] == true),
        "cloud-1 did not join the registry: {}\n{}",
        first.log(),
        hub.log()
    );
    first.deploy("echo", "echo.wasm", &[]);

    // kill -9 and back on the same ports and store: the bucket is still there.
    hub.restart();
    let second = fabric("cloud-2");
    assert!(
        eventually(LONG, || functions(&second).contains(&"echo".to_string())),
        "cloud-2 does not list `echo` after the hub restarted: {}\n{}\n{}",
        second.json(&["ls"]),
        second.log(),
        hub.log()
    );
    assert!(
        eventually(LONG, || up(&first, "cloud-2") == Some(true)),
        "cloud-1 does not see cloud-2 after the hub restarted: {}\n{}",
        first.json(&["nodes"]),
        first.log()
    );
    // cloud-1 rejoined the same registry (an empty one would have made it
    // forget `echo`), and the module is there for cloud-2 to run.
    assert!(functions(&first).contains(&"echo".to_string()));
    assert_eq!(second.ok(&["invoke", "echo", "--data", "hi"]), "hi");
}
