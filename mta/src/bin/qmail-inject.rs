#![no_main]
fn inject() -> i32 {
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    mta::inject::main(&args)
}
mta::fast_main!(inject);
