//! The `srkit` command: a thin layer that turns flags into library calls.

mod allocator;
mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    allocator::keep_freed_memory();
    // Interrupted (Ctrl-C, kill, a closed terminal): leave no half-written
    // temporary file beside an output. Exit status 130, as shells report
    // an interrupt.
    let _ = ctrlc::set_handler(|| {
        srkit::io::remove_pending_temp_files();
        eprintln!("srkit: interrupted");
        std::process::exit(130);
    });
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
            // The chain of causes on one line, each said once: library
            // errors already quote the error they wrap.
            let mut line = String::new();
            for cause in err.chain() {
                let text = cause.to_string();
                if line.contains(&text) {
                    continue;
                }
                if !line.is_empty() {
                    line.push_str(": ");
                }
                line.push_str(&text);
            }
            eprintln!("srkit: error: {line}");
            ExitCode::FAILURE
        }
    }
}
