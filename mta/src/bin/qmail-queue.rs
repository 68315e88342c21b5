#![no_main]
mta::fast_main!(mta::queue::main);
