//! Files and folders the configuration points at: where the defaults live, private folders,
//! and secret files.

use crate::error::{Exit, fail};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// The default config files, in the order they are tried.
pub fn default_config_paths() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(dir) = xdg_dir("XDG_CONFIG_HOME", ".config") {
        out.push(dir.join("pwreset").join("config.toml"));
    }
    out.push(PathBuf::from("/etc/pwreset/config.toml"));
    out
}

/// The default database path: `$XDG_DATA_HOME/pwreset/pwreset.db`.
pub fn default_database() -> PathBuf {
    xdg_dir("XDG_DATA_HOME", ".local/share")
        .unwrap_or_else(|| PathBuf::from("/var/lib"))
        .join("pwreset")
        .join("pwreset.db")
}

/// `$VAR`, or `$HOME/fallback`. Relative values are ignored: a relative `HOME` or `XDG_*` would
/// make the files pwreset reads depend on the current folder.
fn xdg_dir(var: &str, fallback: &str) -> Option<PathBuf> {
    let absolute = |v: std::ffi::OsString| {
        let p = PathBuf::from(v);
        p.is_absolute().then_some(p)
    };
    std::env::var_os(var).and_then(absolute).or_else(|| {
        std::env::var_os("HOME")
            .and_then(absolute)
            .map(|h| h.join(fallback))
    })
}

/// Create a folder only its owner can enter (0700), with its parents: the database's folder and
/// the outbox hold secrets. An existing folder must be private already (see
/// [`crate::trust::check_private_dir`]). `what` names it in the error ("the database",
/// "mail.file.dir").
pub fn create_private_dir(dir: &Path, what: &str) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| {
            let exit = if e.kind() == std::io::ErrorKind::PermissionDenied {
                Exit::NoPerm
            } else {
                Exit::CantCreate
            };
            fail(
                exit,
                format!("cannot create folder {} for {what}: {e}", dir.display()),
            )
        })?;
    // An existing folder is adopted as it is: it must be as private as one made here.
    crate::trust::check_private_dir(dir, what)
}

/// Read a secret file that must not be readable by group or others, and that only root or the
/// running user may own and write (see [`crate::trust`]).
pub fn read_secret_file(path: &Path, key: &str) -> Result<zeroize::Zeroizing<String>> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| {
        fail(
            if e.kind() == std::io::ErrorKind::PermissionDenied {
                Exit::NoPerm
            } else {
                Exit::Config
            },
            format!("{key}: cannot read {}: {e}", path.display()),
        )
    })?;
    crate::trust::check_trusted_meta(path, &meta, key)?;
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(fail(
            Exit::NoPerm,
            format!(
                "{key}: {} is readable by group or others (mode {:o}); run: chmod 600 {}",
                path.display(),
                mode & 0o777,
                path.display()
            ),
        ));
    }
    if meta.len() > 4096 {
        return Err(fail(
            Exit::Config,
            format!(
                "{key}: {} is larger than 4 KiB; is it the right file?",
                path.display()
            ),
        ));
    }
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("{key}: cannot read {}", path.display()))?,
    );
    let line = text.lines().next().unwrap_or("");
    Ok(zeroize::Zeroizing::new(line.to_owned()))
}
