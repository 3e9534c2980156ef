//! Finding a key's line in the config text, so that every error names the line and the key.
//!
//! Invariants:
//! - Only reads the text; a key it cannot find gives None and the error is still raised
//!   without a line (never a wrong line).
//! - Understands what this config uses: `[table]` and `[[array]]` headers, and `key = value`
//!   lines; a dotted key is `table.key`.

/// The 1-based line of byte `offset`.
pub fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The header (`backend` for `[backend]`, `component` for `[[component]]`) in force at line
/// `n` (1-based), or "" at the top level.
fn table_at(text: &str, n: usize) -> String {
    text.lines()
        .take(n)
        .filter_map(header)
        .last()
        .unwrap_or_default()
}

fn header(line: &str) -> Option<String> {
    let t = line.trim();
    let inner = t
        .strip_prefix("[[")
        .and_then(|r| r.split("]]").next())
        .or_else(|| t.strip_prefix('[').and_then(|r| r.split(']').next()))?;
    Some(inner.trim().to_string())
}

/// The key a `key = value` line sets.
fn key_of(line: &str) -> Option<&str> {
    let (k, _) = line.split_once('=')?;
    let k = k.trim().trim_matches('"');
    (!k.is_empty() && !k.starts_with('[') && !k.starts_with('#')).then_some(k)
}

/// The dotted key (`backend.url`) set on the line of byte `offset`, if that line sets one.
pub fn key_at(text: &str, offset: usize) -> Option<String> {
    let n = line_of(text, offset);
    let line = text.lines().nth(n - 1)?;
    let key = key_of(line)?;
    let table = table_at(text, n);
    Some(if table.is_empty() {
        key.to_string()
    } else {
        format!("{table}.{key}")
    })
}

/// The line of a dotted key (`backend.url`, `delivery.max_age`, top-level `spool`), or of a
/// table's header (`backend`). Only the leading path of identifiers counts: `backend.groups
/// "Backend"` is looked up as `backend.groups`.
pub fn line_of_key(text: &str, dotted: &str) -> Option<usize> {
    let path: String = dotted
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
        .collect();
    let (table, key) = match path.rsplit_once('.') {
        Some((t, k)) => (t.to_string(), Some(k.to_string())),
        None if text
            .lines()
            .any(|l| header(l).as_deref() == Some(path.as_str())) =>
        {
            (path.clone(), None)
        }
        None => (String::new(), Some(path.clone())),
    };
    let mut current = String::new();
    for (i, line) in text.lines().enumerate() {
        if let Some(h) = header(line) {
            current = h;
            if key.is_none() && current == table {
                return Some(i + 1);
            }
            continue;
        }
        if current == table && key.as_deref().is_some_and(|k| key_of(line) == Some(k)) {
            return Some(i + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "spool = \"s.db\"\n[backend]\nkind = \"cachet\"\nurl = 12\n\n[delivery]\nmax_age = \"0s\"\n[[component]]\nname = \"db\"\n";

    #[test]
    fn keys_and_lines_find_each_other() {
        let at = T.find("url").unwrap();
        assert_eq!(line_of(T, at), 4);
        assert_eq!(key_at(T, at).as_deref(), Some("backend.url"));
        assert_eq!(key_at(T, 0).as_deref(), Some("spool"));
        assert_eq!(line_of_key(T, "backend.url"), Some(4));
        assert_eq!(line_of_key(T, "backend"), Some(2));
        assert_eq!(line_of_key(T, "delivery.max_age"), Some(7));
        assert_eq!(line_of_key(T, "spool"), Some(1));
        assert_eq!(line_of_key(T, "backend.groups \"x\""), None);
        assert_eq!(line_of_key(T, "backend.title"), None);
        assert_eq!(
            key_at(T, T.find("name").unwrap()).as_deref(),
            Some("component.name")
        );
    }
}
