use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = pwreset::cli::Cli::parse();
    match pwreset::run(cli) {
        Ok(exit) => ExitCode::from(exit.code()),
        // The reader of our output went away (`pwreset user list | head`): nothing to say.
        Err(err) if pwreset::error::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", pwreset::error::render(&err));
            ExitCode::from(pwreset::error::exit_of(&err).code())
        }
    }
}
