//! `kto-lab`: the workbook's command line. Every subcommand is a thin shell over the library;
//! errors are printed as one line on stderr with a non-zero exit code.

mod bench_cmd;
mod cli;
mod lab3;
mod tour;

use clap::Parser;

fn main() {
    let args = cli::Cli::parse();
    if let Err(err) = cli::run(args) {
        // Library errors carry their cause in their own message (file, line, field): print just it.
        eprintln!("error: {err}");
        std::process::exit(1);
    }
}
