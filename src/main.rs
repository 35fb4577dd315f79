//! The `litequant` command-line tool.

fn main() {
    std::process::exit(litequant_cli::run());
}

#[path = "cli/mod.rs"]
mod litequant_cli;
