#![no_main]
mta::fast_main!(mta::local::main);
