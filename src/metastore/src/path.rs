//! Path rules, as in ZooKeeper: absolute, `/`-separated, no empty or relative parts, no trailing slash.

use crate::MetaStoreError;

pub fn validate_path(path: &str) -> Result<(), MetaStoreError> {
    let bad = || MetaStoreError::BadPath(path.to_string());
    if path == "/" {
        return Ok(());
    }
    if !path.starts_with('/') || path.ends_with('/') {
        return Err(bad());
    }
    for part in path[1..].split('/') {
        if part.is_empty() || part == "." || part == ".." {
            return Err(bad());
        }
    }
    Ok(())
}

/// The parent of a path (`None` for the root).
pub fn parent(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    match path.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => Some(&path[..i]),
        None => None,
    }
}

/// The prefix every descendant of `path` starts with.
pub fn children_prefix(path: &str) -> String {
    if path == "/" {
        "/".to_string()
    } else {
        format!("{path}/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_checked() {
        assert!(validate_path("/aerie/apps/1").is_ok());
        assert!(validate_path("/").is_ok());
        for bad in ["", "aerie", "/aerie/", "/a//b", "/a/../b"] {
            assert!(validate_path(bad).is_err(), "{bad}");
        }
        assert_eq!(parent("/a/b"), Some("/a"));
        assert_eq!(parent("/a"), Some("/"));
        assert_eq!(parent("/"), None);
    }
}
