//! The `srkit` command: a thin layer that turns flags into library calls.

mod cli;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of the system allocator: the NN core allocates a fresh
/// multi-megabyte buffer per layer, and glibc serves those with `mmap`, so
/// every layer paid for zeroed pages and their faults again (half of an
/// ESPCN forward pass: 71 ms CPU with glibc, 35 ms with mimalloc, which
/// keeps freed memory for reuse).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = match cli::Cli::try_parse() {
        Ok(args) => args,
        Err(err) => {
            use clap::error::ErrorKind;
            match err.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    let _ = err.print();
                    return ExitCode::SUCCESS;
                }
                ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    let _ = err.print();
                    return ExitCode::from(2);
                }
                _ => {}
            }
            // One line that names the problem; clap's hint about --help is
            // implied.
            let text = err.render().to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            eprintln!("srkit: {first}");
            return ExitCode::from(2);
        }
    };
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // A closed pipe (`srkit eval ... | head`) is not a failure.
            let broken_pipe = err.chain().any(|e| {
                e.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            });
            if broken_pipe {
                return ExitCode::SUCCESS;
            }
            eprintln!("srkit: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
