//! The `cellar` binary: parse, run, print each error once, exit with the documented code.

mod cli;

fn main() {
    std::process::exit(cli::main());
}
