//! Probes for filesystem and network access the host should not grant.
//! Prints `dir=ok|err`, `file=ok|err` and `net=ok|err`, one per line.
fn verdict<T, E>(result: Result<T, E>) -> &'static str {
    if result.is_ok() {
        "ok"
    } else {
        "err"
    }
}

fn main() {
    println!("dir={}", verdict(std::fs::read_dir("/")));
    println!("file={}", verdict(std::fs::read("/etc/passwd")));
    println!(
        "net={}",
        verdict(std::net::TcpStream::connect("127.0.0.1:1"))
    );
}
