//! `fib`: the n-th Fibonacci number by naive recursion, n from the request
//! (default 10). SledgeEDF's bimodal workload: fib(10) is urgent and
//! short, fib(36) (on this machine's scale) long.

fn fib(n: u64) -> u64 {
    if n < 2 { n } else { fib(n - 1) + fib(n - 2) }
}

fn main() {
    weft_sdk::run(|request| {
        let n: u64 = std::str::from_utf8(&request)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(10)
            .min(50);
        Ok::<_, std::convert::Infallible>(format!("{}\n", fib(std::hint::black_box(n))).into_bytes())
    });
}
