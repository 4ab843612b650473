//! Prints every environment variable as a sorted `K=V` line, then `args=<n>`.
fn main() {
    let mut vars: Vec<(String, String)> = std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .collect();
    vars.sort();
    for (key, value) in vars {
        println!("{key}={value}");
    }
    println!("args={}", std::env::args_os().count());
}
