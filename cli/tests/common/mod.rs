//! Running the `crm` binary from a test that serves the fake Stripe on its own runtime.

use std::process::Output;

/// Runs `crm` with `args` and Stripe's API at `stripe_base`, waiting off the runtime's threads so the
/// fake Stripe keeps answering meanwhile.
pub async fn crm(args: Vec<String>, stripe_base: &str) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_crm"));
    command.args(args).env("CRM_STRIPE_API_BASE", stripe_base);
    tokio::task::spawn_blocking(move || command.output().expect("run crm")).await.expect("crm finished")
}

/// `crm {command} --publication daily --account main --data-dir {data_dir}` with `extra` arguments.
pub async fn on_account(command: &str, data_dir: &str, stripe_base: &str, extra: &[&str]) -> Output {
    let mut args: Vec<String> =
        [command, "--publication", "daily", "--account", "main", "--data-dir", data_dir].map(String::from).to_vec();
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    crm(args, stripe_base).await
}
