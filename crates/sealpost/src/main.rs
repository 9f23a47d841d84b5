//! `sealpost`: one command line. `sealpost serve` runs the server; the other commands are the
//! client.

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "sealpost",
    version,
    about = "Sealpost: end-to-end encrypted messaging you run yourself"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (SQLite at ./sealpost.db unless told otherwise).
    Serve(sealpost_server::ServeArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Serve(args) => runtime.block_on(sealpost_server::serve(args)),
    }
}
