//! `kto-lab`: the workbook's command line. Every subcommand is a thin shell over the library;
//! errors are printed as one line on stderr with a non-zero exit code.

mod bench_cmd;
mod cli;
mod lab3;
mod rate_cmd;
mod tour;

use clap::Parser;

fn main() {
    keep_freed_memory();
    let args = cli::Cli::parse();
    if let Err(err) = cli::run(args) {
        // Library errors carry their cause in their own message (file, line, field): print just it.
        eprintln!("error: {err}");
        std::process::exit(1);
    }
}

/// A training step allocates and frees many buffers of 0.1–2 MB. glibc's malloc serves those
/// with fresh `mmap`s and hands them back on free, so every step pays page faults and zeroing
/// of fresh pages (5–7 % of a step in `perf`). Serving them from the heap and never trimming it
/// lets the same memory be reused step after step.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // (32 MiB is the largest threshold glibc accepts on 64-bit.)
    // SAFETY: mallopt only changes malloc's tuning; it is called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}
