//! `nap`: sleeps for the number of milliseconds in the request (default
//! 10), then answers `rested` — a function bound by its latency, not by the
//! CPU, so several run at once on a small machine.

fn main() {
    weft_sdk::run(|request| {
        let ms: u64 = std::str::from_utf8(&request)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(10);
        std::thread::sleep(std::time::Duration::from_millis(ms));
        Ok::<_, std::convert::Infallible>(b"rested".to_vec())
    });
}
