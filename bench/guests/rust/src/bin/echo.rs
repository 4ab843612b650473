//! `echo`: answers its request as it came, touching nothing else — a step
//! whose output is the next step's input, at the same size every step.

fn main() {
    weft_sdk::run(Ok::<_, std::convert::Infallible>);
}
