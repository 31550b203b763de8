//! The file transport's outbox: one `<uuid>.eml` file per message, named as lettre's
//! `FileTransport` names them (so scripts that read the outbox keep working), but created 0600
//! whatever the umask: lettre writes with the default mode, and a reset link in a
//! world-readable file is anyone's password.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Write one message into `dir` as a new file; returns its path.
pub fn write(dir: &Path, message: &[u8]) -> std::io::Result<PathBuf> {
    let path = dir.join(format!("{}.eml", uuid_v4()?));
    let mut file = crate::trust::create_private_file(&path)?;
    file.write_all(message)?;
    Ok(path)
}

/// A random (version 4) UUID in its usual hyphenated lower-case form, as lettre makes them.
fn uuid_v4() -> std::io::Result<String> {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| std::io::Error::other("the system random number generator failed"))?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_look_like_lettres() {
        let id = uuid_v4().expect("random");
        assert_eq!(id.len(), 36);
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'), "version 4: {id}");
        assert!(
            matches!(parts[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'),
            "variant: {id}"
        );
    }
}
