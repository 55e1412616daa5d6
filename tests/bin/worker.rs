//! A real `tend-worker` process for the tests that need one of their own (its own metrics
//! recorder and listener, its own process id): the same code as the `tend-worker` binary,
//! built by `cargo test` for the tests of this package.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tend_worker::run_process(false).await
}
