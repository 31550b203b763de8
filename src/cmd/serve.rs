//! `pwreset serve`: the web front end of the reset service. Everything lives in [`crate::web`];
//! this only turns the command line into its options.

use crate::Ctx;
use crate::cli::ServeArgs;
use crate::error::Exit;
use anyhow::Result;

pub fn run(ctx: &Ctx, args: ServeArgs) -> Result<Exit> {
    let config = ctx.config()?;
    crate::web::serve(
        config,
        crate::web::Options {
            listen: args.listen,
            log_format: args.log_format,
            verbosity: ctx.verbosity,
        },
    )?;
    Ok(Exit::Ok)
}
