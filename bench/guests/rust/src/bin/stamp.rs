//! `stamp`: answers the request followed by a space and the wall clock at
//! its start, in microseconds since the UNIX epoch (needs `clock = true`).

fn main() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    weft_sdk::run(|request| {
        let mut out = request;
        out.extend_from_slice(format!(" {now}").as_bytes());
        Ok::<_, std::convert::Infallible>(out)
    });
}
