//! `kto-lab`: the workbook's command line. Every subcommand is a thin shell over the library;
//! errors are printed as one line on stderr with a non-zero exit code.

mod cli;
mod tour;

use clap::Parser;

fn main() {
    let args = cli::Cli::parse();
    if let Err(err) = cli::run(args) {
        // `{:#}` prints the whole context chain on one line: "reading x.json: x.json:3: ...".
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}
