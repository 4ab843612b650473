//! Allocates memory in 1 MiB chunks up to the number of MiB given on stdin
//! (default 1024), touching every page of each chunk and keeping all of them
//! alive, then prints how many MiB it allocated.
use std::hint::black_box;
use std::io::{self, Read};

const MIB: usize = 1 << 20;

fn main() {
    let mut input = String::new();
    let _ = io::stdin().read_to_string(&mut input);
    let target = input.trim().parse::<usize>().unwrap_or(1024);

    let mut chunks: Vec<Vec<u8>> = Vec::new();
    for i in 0..target {
        let mut chunk = vec![0u8; MIB];
        for page in chunk.chunks_mut(4096) {
            page[0] = i as u8 | 1;
        }
        chunks.push(black_box(chunk));
    }
    black_box(&chunks);
    println!("{}", chunks.len());
}
