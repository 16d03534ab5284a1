//! `handheld`: the reference handheld client on the command line.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
