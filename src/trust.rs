//! Which files and folders pwreset may trust.
//!
//! pwreset runs as root from cron and sudo, and the files it reads decide what it runs
//! (`[mail.sendmail] command`), where it writes reset links, and which tokens are valid. So, like
//! sudo and OpenSSH's `StrictModes`, it only trusts a file that root or the user running it owns
//! and that nobody else can write, in folders nobody else can write either (otherwise they could
//! swap the file). The rules, in one place:
//!
//! - A file pwreset reads as configuration (config, SMTP password, pepper, templates): owned by
//!   root or the running user, not writable by group or others; being readable is fine for the
//!   config, which holds no secrets (secret files check readability themselves).
//! - The folders above it, up to `/`: owned by root or the running user, and not writable by
//!   group or others, unless the folder is sticky (`/tmp`): there only an entry's owner can
//!   rename or delete it, and the entry below is itself checked. This is OpenSSH's rule, but for
//!   the sticky exception, which OpenSSH does not make.
//! - A folder pwreset writes into or reads a list of files from (the outbox, the database's
//!   folder, `template_dir`): the same, and never writable by group or others, sticky or not:
//!   someone else could add files to it.
//! - The SQLite database: a regular file (not a FIFO or a device), with regular-file sidecars
//!   (`-wal`, `-shm`, `-journal`) that are not symbolic links; writers also want it owned by root
//!   or themselves and writable by nobody else.
//!
//! Problems with owners and modes are permission problems (77) and the message gives the
//! `chmod`/`chown` that fixes them; a path of the wrong kind is 73 (database) or 78 (template).

use crate::error::{Exit, fail};
use anyhow::Result;
use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Longest template file: a mail template is a few KiB.
pub const MAX_TEMPLATE_LEN: u64 = 256 * 1024;

const S_ISVTX: u32 = 0o1000;
/// Write permission for group or others.
const GO_WRITE: u32 = 0o022;

/// The effective user pwreset runs as.
fn me() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Root and the user running pwreset: the only owners whose files pwreset trusts.
pub fn trusted_owner(uid: u32) -> bool {
    uid == 0 || uid == me()
}

/// `uid 65534 (nobody)`, for messages.
fn describe_uid(uid: u32) -> String {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(u)) => format!("uid {uid} ({})", u.name),
        _ => format!("uid {uid}"),
    }
}

/// The name `chown` should be given for the running user.
fn my_name() -> String {
    let uid = me();
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(u)) => u.name,
        _ => uid.to_string(),
    }
}

/// Who may own pwreset's files, as the end of "pwreset only trusts files that ...".
fn trusted_owners() -> String {
    if me() == 0 {
        "root owns".to_owned()
    } else {
        format!("root or you ({}) own", describe_uid(me()))
    }
}

/// How strictly to judge a folder.
#[derive(Clone, Copy, PartialEq, Eq)]
enum FolderRule {
    /// Nobody but its owner may add files to it.
    Private,
    /// A folder above something pwreset checks: a sticky folder (`/tmp`) may be writable.
    Above,
}

/// Refuse (77) `path` unless a trusted user owns it and group and others cannot write it.
/// `kind` is "file" or "folder", `what` names it for the user ("mail.template_dir"), `chmod` is
/// the mode that fixes a bad one ("600", "go-w").
fn judge(path: &Path, meta: &Metadata, kind: &str, what: &str, chmod: &str) -> Result<()> {
    let mode = meta.mode();
    let bad_owner = !trusted_owner(meta.uid());
    let bad_mode = mode & GO_WRITE != 0;
    if !bad_owner && !bad_mode {
        return Ok(());
    }
    let shown = path.display();
    let mut why = Vec::new();
    let mut fix = Vec::new();
    if bad_owner {
        why.push(format!("belongs to {}", describe_uid(meta.uid())));
        fix.push(format!("chown {} {shown}", my_name()));
    }
    if bad_mode {
        why.push(format!(
            "can be written by group or others (mode {:o})",
            mode & 0o7777
        ));
        fix.push(format!("chmod {chmod} {shown}"));
    }
    Err(fail(
        Exit::NoPerm,
        format!(
            "{what}: {kind} {shown} {}; pwreset only trusts {kind}s that {} and nobody else can write. Check its contents, then run: {}",
            why.join(" and "),
            trusted_owners(),
            fix.join(" && ")
        ),
    ))
}

/// `path` made absolute against the current folder, without resolving symbolic links.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

/// Check `dir` and every folder above it, both as written and with symbolic links resolved:
/// the folders holding a symbolic link decide where it points. `dir` itself is judged by
/// `first`, the folders above it as [`FolderRule::Above`].
fn check_folder_chain(dir: &Path, what: &str, first: FolderRule) -> Result<()> {
    let written = absolute(dir);
    let mut chains = vec![written.clone()];
    if let Ok(real) = std::fs::canonicalize(&written)
        && real != written
    {
        chains.push(real);
    }
    for chain in chains {
        let mut rule = first;
        for folder in chain.ancestors() {
            let meta = match std::fs::metadata(folder) {
                Ok(m) => m,
                // A folder not created yet cannot be judged; what exists above it is.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    rule = FolderRule::Above;
                    continue;
                }
                Err(e) => {
                    return Err(fail(
                        Exit::NoPerm,
                        format!("{what}: cannot check folder {}: {e}", folder.display()),
                    ));
                }
            };
            let sticky_ok = rule == FolderRule::Above
                && meta.mode() & S_ISVTX != 0
                && trusted_owner(meta.uid());
            if !sticky_ok {
                let chmod = if rule == FolderRule::Private {
                    "700"
                } else {
                    "go-w"
                };
                judge(folder, &meta, "folder", what, chmod)?;
            }
            rule = FolderRule::Above;
        }
    }
    Ok(())
}

/// The folder a file lives in; the current folder for a bare file name.
fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Check a folder pwreset writes private files into, or reads files from by name (the
/// outbox, the database's folder, `template_dir`): a folder, owned by root or the running user,
/// that group and others cannot write, under folders they cannot write either (but sticky ones).
pub fn check_private_dir(dir: &Path, what: &str) -> Result<()> {
    match std::fs::metadata(dir) {
        Ok(m) if !m.is_dir() => {
            return Err(fail(
                Exit::CantCreate,
                format!(
                    "{what}: {} is not a folder; point it at a folder",
                    dir.display()
                ),
            ));
        }
        _ => {}
    }
    check_folder_chain(dir, what, FolderRule::Private)
}

/// Check a file pwreset reads as configuration, whose metadata the caller has (from the opened
/// file, so it is the file that will be read): owned by root or the running user, not writable
/// by group or others, in folders nobody else can write (see the module notes); anything but a
/// regular file is a configuration error (78). Readability is
/// the caller's business: a config may be world-readable, a secret file may not.
pub fn check_trusted_meta(path: &Path, meta: &Metadata, what: &str) -> Result<()> {
    if !meta.is_file() {
        return Err(fail(
            Exit::Config,
            format!(
                "{what}: {} is {}; point it at a regular file",
                path.display(),
                kind_of(meta)
            ),
        ));
    }
    judge(path, meta, "file", what, "go-w")?;
    check_folder_chain(folder_of(path), what, FolderRule::Above)?;
    if let Ok(real) = std::fs::canonicalize(path)
        && real != absolute(path)
    {
        check_folder_chain(folder_of(&real), what, FolderRule::Above)?;
    }
    Ok(())
}

/// [`check_trusted_meta`] for a file by path: the generic check for a config, SMTP password,
/// pepper or CA file. A file that cannot be examined is 77 when permission was denied, else 78.
pub fn check_trusted_file(path: &Path, what: &str) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| {
        fail(
            if e.kind() == std::io::ErrorKind::PermissionDenied {
                Exit::NoPerm
            } else {
                Exit::Config
            },
            format!("{what}: cannot read {}: {e}", path.display()),
        )
    })?;
    check_trusted_meta(path, &meta, what)
}

/// Read a template file from `template_dir` with hard limits: `Ok(None)` when it does not
/// exist (the built-in one is used); 78 for a symbolic link, anything but a regular file, more
/// than [`MAX_TEMPLATE_LEN`] bytes or text that is not UTF-8; 77 for a file someone else owns or
/// can write. The folder itself is checked by [`check_private_dir`].
pub fn read_template(path: &Path, what: &str) -> Result<Option<String>> {
    use rustix::fs::OFlags;
    let shown = path.display();
    let config_err = |why: String| fail(Exit::Config, format!("{what}: {shown} {why}"));
    // O_NOFOLLOW: a link to /etc/shadow must not become the body of a mail. O_NONBLOCK: opening
    // a FIFO must not wait for a writer; fstat then refuses it.
    let flags = (OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC).bits();
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags as i32)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            return Err(config_err(
                "is a symbolic link; templates must be regular files: replace the link with a copy of the file".into(),
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Err(fail(
                Exit::NoPerm,
                format!("{what}: cannot read {shown}: {e}"),
            ));
        }
        Err(e) => return Err(config_err(format!("cannot be read: {e}"))),
    };
    let meta = file
        .metadata()
        .map_err(|e| config_err(format!("cannot be examined: {e}")))?;
    if !meta.is_file() {
        return Err(config_err(
            "is not a regular file; templates must be regular files".into(),
        ));
    }
    judge(path, &meta, "file", what, "go-w")?;
    let too_big = || {
        config_err(format!(
            "is larger than {} KiB; is it the right file?",
            MAX_TEMPLATE_LEN / 1024
        ))
    };
    if meta.len() > MAX_TEMPLATE_LEN {
        return Err(too_big());
    }
    let mut bytes = Vec::new();
    // The file may grow between fstat and read: the limit holds whatever its size was.
    file.take(MAX_TEMPLATE_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| config_err(format!("cannot be read: {e}")))?;
    if bytes.len() as u64 > MAX_TEMPLATE_LEN {
        return Err(too_big());
    }
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| config_err("is not UTF-8 text".into()))
}

/// Create a new file only its owner can read and write (0600 whatever the umask), failing if
/// anything, a symbolic link included, is already at `path`.
pub fn create_private_file(path: &Path) -> std::io::Result<File> {
    let flags = (rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::CLOEXEC).bits();
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(flags as i32)
        .open(path)
}

/// How a command is about to use the database, for [`check_database_path`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbUse {
    /// `init`: may create the file and its folders.
    Create,
    /// A command that writes.
    Write,
    /// A command that only reads (verify, user list, audit): other users' databases are fine,
    /// if pwreset can read them.
    Read,
}

/// What [`check_database_path`] found that is worth saying but not worth refusing.
#[derive(Debug, Clone, Default)]
pub struct DbFileCheck {
    /// The database file exists (after the check: nothing is created).
    pub exists: bool,
    /// Lines for `init` and `doctor` to print, each with its fix.
    pub warnings: Vec<String>,
}

/// The names SQLite gives the files beside a database.
const SIDECARS: [&str; 3] = ["-wal", "-shm", "-journal"];

/// Check a SQLite database path before SQLite opens it, so that nothing is created or waited on
/// for a path that is not a database: anything but a regular file (a FIFO, /dev/null, a
/// folder) is 73 at once; so is a missing file whose folder is not a folder. A sidecar file
/// that is a symbolic link or not a regular file is refused naming the file (77 when someone
/// else owns it). Writers ([`DbUse::Create`], [`DbUse::Write`]) also refuse (77) a database, a
/// sidecar or a folder that another non-root user owns or that group or others can write, with
/// the fix; a database group or others can read is a warning.
///
/// A missing file is not an error here (`exists` is false): the caller says "run init", or
/// creates it.
pub fn check_database_path(path: &Path, usage: DbUse) -> Result<DbFileCheck> {
    let writer = usage != DbUse::Read;
    let shown = path.display();
    let cant = |why: String| fail(Exit::CantCreate, format!("database {shown} {why}"));
    let meta = match std::fs::metadata(path) {
        Ok(m) => Some(m),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Err(fail(
                Exit::NoPerm,
                format!("cannot examine database {shown}: {e}"),
            ));
        }
        Err(e) => {
            return Err(cant(format!(
                "cannot be examined: {e}; point --db / PWRESET_DB / `database` at a SQLite file"
            )));
        }
    };
    let Some(meta) = meta else {
        if std::fs::symlink_metadata(path).is_ok() {
            return Err(cant(
                "is a symbolic link to nothing; remove it or point --db / PWRESET_DB / `database` at a SQLite file".into(),
            ));
        }
        let dir = folder_of(path);
        match std::fs::metadata(dir) {
            Ok(m) if !m.is_dir() => {
                return Err(cant(format!(
                    "cannot be created: {} is not a folder",
                    dir.display()
                )));
            }
            Ok(_) if usage == DbUse::Create => {
                check_private_dir(dir, "the database's folder")?;
            }
            _ => {}
        }
        return Ok(DbFileCheck::default());
    };
    if !meta.is_file() {
        return Err(cant(format!(
            "is {}, not a SQLite database file; point --db / PWRESET_DB / `database` at a regular file",
            kind_of(&meta)
        )));
    }
    // SQLite puts its sidecars beside the file a symbolic link points to.
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let mut out = DbFileCheck {
        exists: true,
        warnings: Vec::new(),
    };
    if writer {
        check_private_dir(folder_of(&real), "the database's folder")?;
        judge(&real, &meta, "file", "the database", "600")?;
    }
    {
        // Readers (doctor) are told too: it is only a warning.
        let mode = meta.mode();
        if mode & 0o044 != 0 {
            out.warnings.push(format!(
                "database {} can be read by group or others (mode {:o}): they can read its audit trail and users; to keep it private, run: chmod 600 {}",
                real.display(),
                mode & 0o7777,
                real.display()
            ));
        }
    }
    for suffix in SIDECARS {
        let mut name = real.clone().into_os_string();
        name.push(suffix);
        let side = PathBuf::from(name);
        let Ok(m) = std::fs::symlink_metadata(&side) else {
            continue;
        };
        let odd = if m.file_type().is_symlink() {
            Some("is a symbolic link")
        } else if !m.is_file() {
            Some("is not a regular file")
        } else {
            None
        };
        let foreign = !trusted_owner(m.uid());
        if let Some(odd) = odd {
            return Err(fail(
                if foreign {
                    Exit::NoPerm
                } else {
                    Exit::CantCreate
                },
                format!(
                    "{} (beside database {}) {odd}, owned by {}; SQLite cannot use it and someone may have planted it. Make sure no pwreset is running, then remove it: rm {}",
                    side.display(),
                    real.display(),
                    describe_uid(m.uid()),
                    side.display()
                ),
            ));
        }
        if writer && foreign {
            return Err(fail(
                Exit::NoPerm,
                format!(
                    "{} (beside database {}) belongs to {}; pwreset only trusts files that {}. Make sure no pwreset is running, then remove it: rm {}",
                    side.display(),
                    real.display(),
                    describe_uid(m.uid()),
                    trusted_owners(),
                    side.display()
                ),
            ));
        }
    }
    Ok(out)
}

/// "a FIFO", "a folder" ..., for messages.
fn kind_of(meta: &Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_dir() {
        "a folder"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::exit_of;
    use std::os::unix::fs::PermissionsExt;

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    #[test]
    fn a_private_temp_dir_passes_and_a_writable_one_does_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        check_private_dir(dir.path(), "test").expect("a 0700 temp dir is private");
        chmod(dir.path(), 0o777);
        let err = check_private_dir(dir.path(), "test").expect_err("0777 is not private");
        assert_eq!(exit_of(&err), Exit::NoPerm);
        assert!(err.to_string().contains("chmod 700"), "{err}");
        chmod(dir.path(), 0o1777);
        // Sticky does not help the folder itself: others could still add files to it.
        assert!(check_private_dir(dir.path(), "test").is_err());
    }

    #[test]
    fn a_file_under_a_sticky_folder_is_trusted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("config.toml");
        std::fs::write(&file, "").expect("write");
        chmod(&file, 0o644);
        chmod(dir.path(), 0o1777);
        check_trusted_file(&file, "config").expect("sticky folder above a trusted file");
        chmod(dir.path(), 0o777);
        let err = check_trusted_file(&file, "config").expect_err("anyone could replace it");
        assert!(err.to_string().contains("chmod go-w"), "{err}");
        chmod(dir.path(), 0o755);
        chmod(&file, 0o664);
        let err = check_trusted_file(&file, "config").expect_err("group-writable");
        assert_eq!(exit_of(&err), Exit::NoPerm);
    }

    #[test]
    fn templates_are_limited() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = dir.path().join("reset.txt");
        assert!(read_template(&t, "t").expect("missing is fine").is_none());
        std::fs::write(&t, "x".repeat(MAX_TEMPLATE_LEN as usize + 1)).expect("write");
        let err = read_template(&t, "t").expect_err("too big");
        assert_eq!(exit_of(&err), Exit::Config);
        std::fs::remove_file(&t).expect("rm");
        std::os::unix::fs::symlink("/etc/hostname", &t).expect("symlink");
        let err = read_template(&t, "t").expect_err("a link");
        assert_eq!(exit_of(&err), Exit::Config);
        assert!(err.to_string().contains("symbolic link"), "{err}");
    }

    #[test]
    fn private_files_are_0600_and_new() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("m.eml");
        create_private_file(&p).expect("create");
        let mode = std::fs::metadata(&p).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(create_private_file(&p).is_err(), "never overwritten");
    }
}
