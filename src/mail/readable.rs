//! A message as its reader sees it: the headers people read, and the text part decoded (no
//! quoted-printable `=3D` or soft line breaks, no base64). For `demo`.

use base64::Engine as _;

/// The headers worth showing, in this order when present.
const SHOWN: [&str; 7] = [
    "From",
    "To",
    "Subject",
    "Date",
    "Content-Language",
    "Auto-Submitted",
    "Message-ID",
];

/// `eml` (an RFC 5322 message as pwreset writes it) with its headers decoded and unfolded,
/// then a blank line, then the decoded text/plain part.
pub fn readable(eml: &[u8]) -> String {
    let text = String::from_utf8_lossy(eml).replace("\r\n", "\n");
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let headers = unfold(head);
    let mut out = String::new();
    for name in SHOWN {
        if let Some(v) = header(&headers, name) {
            out.push_str(&format!("{name}: {}\n", decode_words(v)));
        }
    }
    out.push('\n');
    out.push_str(&text_part(&headers, body));
    out
}

fn unfold(head: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = out.last_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            out.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    out
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The first text/plain part of a body with these headers, decoded.
fn text_part(headers: &[(String, String)], body: &str) -> String {
    let ctype = header(headers, "Content-Type").unwrap_or("text/plain");
    if let Some(boundary) = param(ctype, "boundary") {
        let delimiter = format!("--{boundary}");
        for part in body.split(&delimiter).skip(1) {
            if part.starts_with("--") {
                break;
            }
            let part = part.strip_prefix('\n').unwrap_or(part);
            let (head, content) = part.split_once("\n\n").unwrap_or((part, ""));
            let h = unfold(head);
            let t = header(&h, "Content-Type").unwrap_or("text/plain");
            if t.to_ascii_lowercase().starts_with("multipart/") {
                return text_part(&h, content);
            }
            if t.to_ascii_lowercase().starts_with("text/plain") {
                return decode_body(&h, content);
            }
        }
        return String::new();
    }
    decode_body(headers, body)
}

fn decode_body(headers: &[(String, String)], content: &str) -> String {
    let encoding = header(headers, "Content-Transfer-Encoding")
        .unwrap_or("7bit")
        .to_ascii_lowercase();
    let bytes = match encoding.as_str() {
        "quoted-printable" => {
            quoted_printable::decode(content.as_bytes(), quoted_printable::ParseMode::Robust)
                .unwrap_or_else(|_| content.as_bytes().to_vec())
        }
        "base64" => {
            let clean: String = content.split_whitespace().collect();
            base64::engine::general_purpose::STANDARD
                .decode(clean)
                .unwrap_or_else(|_| content.as_bytes().to_vec())
        }
        _ => content.as_bytes().to_vec(),
    };
    String::from_utf8_lossy(&bytes)
        .replace("\r\n", "\n")
        .trim_end()
        .to_owned()
}

/// A `name=value` or `name="value"` parameter of a header value.
fn param(value: &str, name: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_matches('"').to_owned())
    })
}

/// RFC 2047 encoded words (`=?utf-8?b?...?=`, `=?utf-8?q?...?=`) decoded; anything else as is.
fn decode_words(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    let mut last_was_word = false;
    while let Some(start) = rest.find("=?") {
        let (before, tail) = rest.split_at(start);
        let decoded = tail[2..].splitn(3, '?').collect::<Vec<_>>();
        let word = match decoded.as_slice() {
            [charset, enc, more] => more.find("?=").and_then(|end| {
                let data = &more[..end];
                let bytes = match enc.to_ascii_lowercase().as_str() {
                    "b" => base64::engine::general_purpose::STANDARD.decode(data).ok(),
                    "q" => quoted_printable::decode(
                        data.replace('_', " ").as_bytes(),
                        quoted_printable::ParseMode::Robust,
                    )
                    .ok(),
                    _ => None,
                }?;
                let consumed = 2 + charset.len() + 1 + enc.len() + 1 + end + 2;
                Some((String::from_utf8_lossy(&bytes).into_owned(), consumed))
            }),
            _ => None,
        };
        match word {
            Some((text, consumed)) => {
                // Whitespace between two encoded words is not part of the text (RFC 2047 6.2).
                if !(last_was_word && before.trim().is_empty()) {
                    out.push_str(before);
                }
                out.push_str(&text);
                rest = &tail[consumed..];
                last_was_word = true;
            }
            None => {
                out.push_str(before);
                out.push_str("=?");
                rest = &tail[2..];
                last_was_word = false;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_printable_text_part_is_decoded() {
        let eml = "From: A <a@example.com>\r\nSubject: =?utf-8?b?UsOpaW5pdGlhbGlzZXo=?=\r\n =?utf-8?q?_le_mot?=\r\nContent-Type: multipart/alternative;\r\n boundary=\"XYZ\"\r\n\r\n--XYZ\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nOpen https://e.example/r?token=3Dpwr_abc=\r\ndef now =C3=A9\r\n--XYZ\r\nContent-Type: text/html\r\n\r\n<p>x</p>\r\n--XYZ--\r\n";
        let r = readable(eml.as_bytes());
        assert!(r.contains("Subject: Réinitialisez le mot\n"), "{r}");
        assert!(
            r.contains("Open https://e.example/r?token=pwr_abcdef now é"),
            "{r}"
        );
        assert!(!r.contains("<p>"), "{r}");
    }

    #[test]
    fn base64_and_plain_bodies() {
        let eml = "To: b@example.com\nContent-Transfer-Encoding: base64\n\naMOpbGxv\n";
        assert_eq!(readable(eml.as_bytes()), "To: b@example.com\n\nhéllo");
        let eml = "To: b@example.com\n\nplain =3D text\n";
        assert_eq!(
            readable(eml.as_bytes()),
            "To: b@example.com\n\nplain =3D text"
        );
        assert_eq!(decode_words("a =?x?z?y b"), "a =?x?z?y b");
    }
}
