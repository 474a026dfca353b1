//! Keys and values in the shell: arguments may carry C-style escapes (`\x00`, `\n`, `\\`), and
//! output shows bytes the same way, so binary data round-trips through copy and paste.

/// Decodes escapes in a shell argument.
pub fn unescape(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let next = *bytes
            .get(i + 1)
            .ok_or_else(|| format!("'{text}' ends with a lone backslash"))?;
        match next {
            b'\\' => out.push(b'\\'),
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'r' => out.push(b'\r'),
            b'0' => out.push(0),
            b'"' => out.push(b'"'),
            b'\'' => out.push(b'\''),
            b'x' => {
                let hex = text
                    .get(i + 2..i + 4)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("bad \\x escape in '{text}': expected two hex digits"))?;
                out.push(hex);
                i += 2;
            }
            other => return Err(format!("unknown escape '\\{}' in '{text}'", other as char)),
        }
        i += 2;
    }
    Ok(out)
}

/// Shows bytes as text, escaping anything not printable ASCII.
pub fn escape(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_round_trip() {
        for raw in [b"plain".to_vec(), vec![0, 1, 255, b'\\', b'"', b'\n']] {
            assert_eq!(unescape(&escape(&raw)).unwrap(), raw);
        }
    }

    #[test]
    fn bad_escapes_are_explained() {
        assert!(unescape("a\\").unwrap_err().contains("lone backslash"));
        assert!(unescape("\\xZZ").unwrap_err().contains("two hex digits"));
        assert!(unescape("\\q").unwrap_err().contains("unknown escape"));
    }
}
