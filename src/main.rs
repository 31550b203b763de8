use clap::Parser;
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = pwreset::cli::Cli::parse();
    // A panic is a bug, but it still exits with the contract's "internal error" (70), never
    // Rust's 101, so scripts see a documented status.
    let result = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pwreset::run(cli)))
    {
        Ok(result) => result,
        Err(_) => {
            let _ = writeln!(
                std::io::stderr(),
                "error: internal error (a bug in pwreset; please report it)"
            );
            return ExitCode::from(pwreset::error::Exit::Software.code());
        }
    };
    match result {
        Ok(exit) => ExitCode::from(exit.code()),
        // The reader of our output went away (`pwreset user list | head`): nothing to say.
        Err(err) if pwreset::error::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            // Not eprintln!: it panics when stderr is a closed pipe.
            let _ = writeln!(std::io::stderr(), "error: {}", pwreset::error::render(&err));
            ExitCode::from(pwreset::error::exit_of(&err).code())
        }
    }
}
