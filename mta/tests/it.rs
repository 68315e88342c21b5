#[path = "it/queue.rs"]
mod queue;
