//! Triggers: MQTT subscriptions against a real mosquitto, and cron
//! schedules, including catch-up after the node was down.

use crate::harness::{Node, eventually, guest};
use crate::servers::{Mosquitto, Redis, free_port};
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The response topic of the sensor function.
const FAHRENHEIT: &str = "sensors/fahrenheit";
/// How long the node may take to (re)connect to a broker: its backoff
/// reaches 10 s, and this machine is slow.
const CONNECT: Duration = Duration::from_secs(60);

fn mqtt_config(url: &str) -> String {
    format!("[mqtt]\nurl = \"{url}\"\n")
}

/// Writes a manifest with the `sensor` function, its MQTT trigger on
/// `sensors/+/temp` answering on [`FAHRENHEIT`], and `extra` spec lines.
fn sensor_manifest(dir: &tempfile::TempDir, extra: &str) -> PathBuf {
    let path = dir.path().join("weft.toml");
    std::fs::write(
        &path,
        format!(
            "manifest_version = 1\n\n[functions.sensor]\nmodule = {:?}\n\
             key_value_stores = [\"default\"]\n{extra}\n\
             [[functions.sensor.mqtt]]\ntopic = \"sensors/+/temp\"\n\
             response_topic = \"{FAHRENHEIT}\"\n",
            guest("sensor.wasm").to_str().unwrap()
        ),
    )
    .unwrap();
    path
}

fn deploy_sensor(node: &Node, dir: &tempfile::TempDir, extra: &str) {
    let manifest = sensor_manifest(dir, extra);
    node.ok(&["deploy", "--manifest", manifest.to_str().unwrap()]);
}

/// Waits until the node's client has subscribed `sensors/+/temp` more than
/// `before` times, as the broker saw it.
fn wait_node_subscribed(node: &Node, broker: &Mosquitto, before: usize) {
    assert!(
        eventually(CONNECT, || broker.subscriptions("weft-", "sensors/+/temp")
            > before),
        "the node did not subscribe sensors/+/temp\nnode log:\n{}\nbroker log:\n{}",
        node.log(),
        broker.log()
    );
}

/// The function's log (its guests' stderr, and the node's notes).
fn fn_log(node: &Node, name: &str) -> String {
    node.ok(&["logs", name, "--limit", "1000"])
}

fn dlq(node: &Node, function: &str) -> Vec<Value> {
    node.json(&["dlq", "ls", function])["invocations"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn triggers_mqtt_messages_invoke_the_function_and_responses_are_published() {
    let broker = Mosquitto::start();
    let node = Node::start_with_config(&mqtt_config(&broker.url()));
    let dir = tempfile::tempdir().unwrap();
    deploy_sensor(&node, &dir, "");
    wait_node_subscribed(&node, &broker, 0);
    let responses = broker.subscribe(FAHRENHEIT);

    // A topic outside the filter first, then one inside it: once the second
    // is answered, the first has had its chance and was not delivered.
    broker.publish("sensors/b/humidity", b"55");
    broker.publish("sensors/a/temp", b"21.5");
    assert!(
        responses.wait_for("sensors/a/temp 70.7F\n", CONNECT),
        "no response; got {:?}\nnode log:\n{}",
        responses.messages(),
        node.log()
    );
    assert_eq!(
        responses.messages(),
        [(FAHRENHEIT.to_string(), "sensors/a/temp 70.7F\n".to_string())]
    );
    assert_eq!(node.metric("weft_async_accepted_total"), 1.0);
    assert!(!fn_log(&node, "sensor").contains("humidity"));

    // Another device under the same filter.
    broker.publish("sensors/b/temp", b"-40");
    assert!(responses.wait_for("sensors/b/temp -40.0F\n", CONNECT));
    assert_eq!(node.metric("weft_async_accepted_total"), 2.0);
    assert_eq!(node.metric("weft_trigger_dropped_total"), 0.0);
    assert!(dlq(&node, "sensor").is_empty());
}

#[test]
fn triggers_bad_mqtt_payloads_are_dead_lettered_or_dropped_and_the_node_keeps_serving() {
    let broker = Mosquitto::start();
    let node = Node::start_with_config(&mqtt_config(&broker.url()));
    let dir = tempfile::tempdir().unwrap();
    deploy_sensor(
        &node,
        &dir,
        "max_request_size = \"1KiB\"\n\
         retry = { attempts = 2, backoff = \"100ms\", max_backoff = \"1s\" }\n",
    );
    node.deploy("echo", "echo.wasm", &[]);
    wait_node_subscribed(&node, &broker, 0);
    let responses = broker.subscribe(FAHRENHEIT);

    // Not a number: fails, is retried once, then dead-lettered.
    broker.publish("sensors/a/temp", b"abc");
    let mut dead = Vec::new();
    assert!(
        eventually(CONNECT, || {
            dead = dlq(&node, "sensor");
            !dead.is_empty()
        }),
        "nothing dead-lettered; function log:\n{}",
        fn_log(&node, "sensor")
    );
    assert_eq!(dead.len(), 1, "{dead:?}");
    let d = &dead[0];
    assert_eq!(d["state"], "dead", "{d}");
    assert_eq!(d["attempts"], 2, "{d}");
    assert_eq!(d["trigger"], "mqtt", "{d}");
    assert_eq!(d["meta"]["subject"], "sensors/a/temp", "{d}");
    assert_eq!(d["last_error"]["code"], "function_exit", "{d}");
    let id = d["id"].as_str().unwrap();
    let rec: Value = node
        .admin_get(&format!("/v1/invocations/{id}"))
        .json()
        .unwrap();
    assert_eq!(rec["state"], "dead", "{rec}");
    // Both attempts ran the guest, which said why it failed.
    assert!(
        eventually(CONNECT, || fn_log(&node, "sensor")
            .matches("payload `abc` is not a temperature")
            .count()
            == 2),
        "{}",
        fn_log(&node, "sensor")
    );
    assert_eq!(node.metric("weft_async_dead_lettered_total"), 1.0);

    // A valid message afterwards works.
    broker.publish("sensors/a/temp", b"30");
    assert!(
        responses.wait_for("sensors/a/temp 86.0F\n", CONNECT),
        "{:?}",
        responses.messages()
    );

    // 4 KiB over a 1 KiB limit: dropped (and acknowledged), logged, counted.
    broker.publish("sensors/big/temp", &[b'1'; 4096]);
    assert!(
        eventually(CONNECT, || fn_log(&node, "sensor")
            .contains("[weft] MQTT message on `sensors/big/temp` dropped")),
        "no drop line; function log:\n{}\nnode log:\n{}",
        fn_log(&node, "sensor"),
        node.log()
    );
    assert_eq!(node.metric("weft_trigger_dropped_total"), 1.0);
    // Queued were the bad message and the good one, not the oversized one.
    assert_eq!(node.metric("weft_async_accepted_total"), 2.0);
    assert_eq!(dlq(&node, "sensor").len(), 1);

    // The node keeps serving: MQTT and HTTP.
    broker.publish("sensors/c/temp", b"0");
    assert!(
        responses.wait_for("sensors/c/temp 32.0F\n", CONNECT),
        "{:?}",
        responses.messages()
    );
    assert_eq!(node.ok(&["invoke", "echo", "--data", "ok"]), "ok");
    assert_eq!(responses.messages().len(), 2, "{:?}", responses.messages());
}

#[test]
fn triggers_mqtt_survives_a_broker_that_is_late_or_killed() {
    let port = free_port();
    let node = Node::start_with_config(&mqtt_config(&format!("mqtt://127.0.0.1:{port}")));
    let dir = tempfile::tempdir().unwrap();
    // Deploying does not need the broker.
    deploy_sensor(&node, &dir, "");
    node.deploy("echo", "echo.wasm", &[]);
    assert_eq!(node.ok(&["invoke", "echo", "--data", "ok"]), "ok");
    assert!(
        eventually(CONNECT, || node.log().contains("mqtt: cannot connect")),
        "the node does not say it cannot reach the broker:\n{}",
        node.log()
    );

    // The broker appears on the configured port.
    let mut broker = Mosquitto::on_port(port);
    wait_node_subscribed(&node, &broker, 0);
    let responses = broker.subscribe(FAHRENHEIT);
    broker.publish("sensors/a/temp", b"21.5");
    assert!(
        responses.wait_for("sensors/a/temp 70.7F\n", CONNECT),
        "{:?}\nnode log:\n{}",
        responses.messages(),
        node.log()
    );
    drop(responses);

    // kill -9 and restart: the broker forgot every session; the node
    // reconnects and subscribes again by itself.
    let before = broker.subscriptions("weft-", "sensors/+/temp");
    broker.kill9();
    broker.restart();
    wait_node_subscribed(&node, &broker, before);
    let responses = broker.subscribe(FAHRENHEIT);
    broker.publish("sensors/a/temp", b"30");
    assert!(
        responses.wait_for("sensors/a/temp 86.0F\n", CONNECT),
        "{:?}\nnode log:\n{}",
        responses.messages(),
        node.log()
    );
    assert_eq!(node.metric("weft_async_accepted_total"), 2.0);
}

/// Deploys `tick.wasm` as `name` with `flags`; returns the CLI's stderr on
/// failure.
fn deploy_refused(node: &Node, name: &str, fixture: &str, flags: &[&str]) -> String {
    let path = guest(fixture);
    let mut args = vec!["deploy", name, path.to_str().unwrap()];
    args.extend_from_slice(flags);
    let out = node.cli(&args);
    assert!(
        !out.status.success(),
        "deploy {flags:?} was accepted: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn triggers_bad_declarations_are_refused_with_invalid_trigger() {
    // No [mqtt] in the node's config: an MQTT trigger cannot work.
    let node = Node::start();
    node.deploy("good", "echo.wasm", &[]);
    let err = deploy_refused(&node, "s", "sensor.wasm", &["--mqtt", "sensors/+/temp"]);
    assert!(
        err.contains("[invalid_trigger]") && err.contains("mqtt"),
        "{err}"
    );

    for (cron, names) in [
        ("61 * * * *", "minute"),
        ("* 24 * * *", "hour"),
        ("0 0 32 * *", "day-of-month"),
        ("* * *", "5 fields"),
        ("x * * * *", "minute"),
    ] {
        let err = deploy_refused(
            &node,
            "t",
            "tick.wasm",
            &["--kv", "default", "--cron", cron],
        );
        assert!(
            err.contains("[invalid_trigger]") && err.contains(cron) && err.contains(names),
            "cron {cron:?}: {err}"
        );
    }

    // With a broker configured (even one that is not up), the filter is
    // checked.
    let node2 = Node::start_with_config(&mqtt_config(&format!("mqtt://127.0.0.1:{}", free_port())));
    for filter in ["a/#/b", "a/b+/c"] {
        let err = deploy_refused(&node2, "s", "sensor.wasm", &["--mqtt", filter]);
        assert!(
            err.contains("[invalid_trigger]") && err.contains(filter),
            "filter {filter:?}: {err}"
        );
    }

    // Nothing was deployed; what was there still runs.
    assert_eq!(node.json(&["ls"])["functions"].as_array().unwrap().len(), 1);
    assert_eq!(
        node2.json(&["ls"])["functions"].as_array().unwrap().len(),
        0
    );
    assert_eq!(node.ok(&["invoke", "good", "--data", "ok"]), "ok");
}

/// The `tick N` numbers in the function's log, in order.
fn ticks_logged(node: &Node, name: &str) -> Vec<u64> {
    fn_log(node, name)
        .lines()
        .filter_map(|l| l.split("INFO tick ").nth(1)?.trim().parse().ok())
        .collect()
}

#[test]
fn triggers_cron_fires_every_second() {
    let node = Node::start();
    node.deploy(
        "tick",
        "tick.wasm",
        &["--kv", "default", "--cron", "* * * * * *"],
    );
    let mut ticks = Vec::new();
    assert!(
        eventually(Duration::from_secs(15), || {
            ticks = ticks_logged(&node, "tick");
            ticks.len() >= 2
        }),
        "ticks {ticks:?}; node log:\n{}",
        node.log()
    );
    assert_eq!(ticks[..2], [1, 2]);
    // Each fire is an asynchronous invocation of trigger `cron`.
    let log = fn_log(&node, "tick");
    let id = log
        .lines()
        .find(|l| l.ends_with("INFO tick 1"))
        .and_then(|l| l.strip_prefix('[')?.split(']').next())
        .unwrap();
    let rec: Value = node
        .admin_get(&format!("/v1/invocations/{id}"))
        .json()
        .unwrap();
    assert_eq!(rec["trigger"], "cron", "{rec}");
    assert_eq!(rec["meta"]["subject"], "* * * * * *", "{rec}");
    assert_eq!(rec["result_text"], "tick 1\n", "{rec}");
    assert_eq!(rec["state"], "succeeded", "{rec}");
}

/// A cron fire's payload, as tick stored it in `last-tick`.
struct Fire {
    scheduled_ms: i64,
    catch_up: bool,
}

impl Fire {
    fn parse(json: &str) -> Fire {
        let v: Value =
            serde_json::from_str(json).unwrap_or_else(|e| panic!("fire payload {json:?}: {e}"));
        assert_eq!(v["schedule"], "* * * * * *", "{v}");
        Fire {
            scheduled_ms: epoch_ms(v["scheduled_at"].as_str().unwrap()),
            catch_up: v["catch_up"].as_bool().unwrap(),
        }
    }
}

/// Milliseconds since the epoch of `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn epoch_ms(t: &str) -> i64 {
    let n = |r: std::ops::Range<usize>| -> i64 {
        t.get(r)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad time {t:?}"))
    };
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 24 + n(11..13)) * 60 + n(14..16)) * 60_000 + n(17..19) * 1000 + n(20..23)
}

/// The values `tick` stored under `last-tick`, from `redis-cli MONITOR`
/// lines such as `... "SET" "weft:default:last-tick" "{\"schedule\":...}"`.
fn fires_seen(monitor: &crate::servers::Lines) -> Vec<Fire> {
    const SET: &str = "\"SET\" \"weft:default:last-tick\" \"";
    monitor
        .all()
        .iter()
        .filter_map(|l| {
            let quoted = &l[l.find(SET)? + SET.len()..];
            let json = quoted.strip_suffix('"')?.replace("\\\"", "\"");
            Some(Fire::parse(&json))
        })
        .collect()
}

#[test]
fn triggers_cron_fires_missed_while_down_are_coalesced_into_one_catch_up() {
    // tick's store on Redis, so every fire's payload can be watched from
    // outside, even across the node's restart.
    let redis = Redis::start();
    let mut node = Node::start_with_config(&format!(
        "[kv.default]\nbackend = \"redis\"\nurl = \"{}\"\n",
        redis.url()
    ));
    node.deploy(
        "tick",
        "tick.wasm",
        &["--kv", "default", "--cron", "* * * * * *"],
    );
    assert!(
        eventually(Duration::from_secs(15), || redis
            .cli(&["GET", "weft:default:ticks"])
            .parse::<u64>()
            .is_ok_and(|n| n >= 1)),
        "no tick; node log:\n{}",
        node.log()
    );
    node.kill9();
    let killed_ms = now_ms();
    let last = Fire::parse(&redis.cli(&["GET", "weft:default:last-tick"]));
    assert!(!last.catch_up);
    assert!(last.scheduled_ms <= killed_ms);
    let monitor = redis.monitor();
    // Down for three seconds: three fires are missed.
    std::thread::sleep(Duration::from_secs(3));
    node.restart();

    // Wait for two regular fires after the downtime.
    let mut fires = Vec::new();
    assert!(
        eventually(Duration::from_secs(60), || {
            fires = fires_seen(&monitor);
            fires
                .iter()
                .filter(|f| !f.catch_up && f.scheduled_ms >= last.scheduled_ms + 3000)
                .count()
                >= 2
        }),
        "fires after restart: {:?}\nnode log:\n{}",
        fires
            .iter()
            .map(|f| (f.scheduled_ms, f.catch_up))
            .collect::<Vec<_>>(),
        node.log()
    );
    let listing: Vec<(i64, bool)> = fires
        .iter()
        .map(|f| (f.scheduled_ms - last.scheduled_ms, f.catch_up))
        .collect();
    let catch_ups: Vec<&Fire> = fires.iter().filter(|f| f.catch_up).collect();
    assert_eq!(
        catch_ups.len(),
        1,
        "fires (ms after the last one run before the kill, catch-up): {listing:?}"
    );
    let c = catch_ups[0].scheduled_ms;
    // The catch-up stands for the latest missed fire, at least 3 s after
    // the last one run before the kill ...
    assert!(c - last.scheduled_ms >= 3000, "{listing:?}");
    // ... and the missed ones before it were not run. (The fire right after
    // the last one run may have been queued before the kill, and runs.)
    assert!(
        fires
            .iter()
            .all(|f| f.scheduled_ms <= last.scheduled_ms + 1000 || f.scheduled_ms >= c),
        "missed fires were run one by one: {listing:?}"
    );
    // Regular fires follow the catch-up.
    assert!(
        fires
            .iter()
            .filter(|f| f.scheduled_ms > c)
            .all(|f| !f.catch_up),
        "{listing:?}"
    );
    assert_eq!(
        node.log().matches("catching up a missed cron fire").count(),
        1,
        "{}",
        node.log()
    );
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn triggers_mqtt_flood_is_held_back_by_a_full_queue_and_nothing_is_lost() {
    let broker = Mosquitto::start();
    let node = Node::start_with_config(&format!(
        "{}\n[queue]\nmax_pending_per_function = 2\n",
        mqtt_config(&broker.url())
    ));
    // One slot, 100 ms per message: the queue of 2 is full almost at once.
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("weft.toml");
    std::fs::write(
        &manifest,
        format!(
            "manifest_version = 1\n[functions.slow]\nmodule = {:?}\nmax_concurrency = 1\n\
             [[functions.slow.mqtt]]\ntopic = \"load/#\"\n",
            guest("nap.wasm").to_str().unwrap()
        ),
    )
    .unwrap();
    node.ok(&["deploy", "--manifest", manifest.to_str().unwrap()]);
    assert!(eventually(CONNECT, || broker
        .subscriptions("weft-", "load/#")
        > 0));
    for i in 0..10 {
        broker.publish(&format!("load/{i}"), b"100");
    }
    // Every message runs once: held back while the queue is full, never
    // dropped, never dead-lettered.
    assert!(
        eventually(Duration::from_secs(90), || node
            .metric("weft_invocations_total{function=\"slow\",outcome=\"ok\"}")
            >= 10.0),
        "node log:\n{}",
        node.log()
    );
    assert_eq!(node.metric("weft_trigger_dropped_total"), 0.0);
    assert!(dlq(&node, "slow").is_empty());
    assert_eq!(node.metric("weft_async_accepted_total"), 10.0);
    // The queue was full at times: the bound held.
    assert!(node.metric("weft_async_refused_total") > 0.0);
}
