//! `relay`: works for the config value `work_ms` milliseconds (default 0),
//! then answers its request as it came: a pipeline step that passes its
//! intermediate on, at the same size every step.

fn main() {
    weft_sdk::run(|request| {
        let ms: u64 = weft_sdk::config::get("work_ms")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        std::thread::sleep(std::time::Duration::from_millis(ms));
        Ok::<_, std::convert::Infallible>(request)
    });
}
