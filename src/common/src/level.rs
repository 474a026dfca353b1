//! Meta levels: how much the meta server may change on its own (SPEC.md section 3).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Travels and is stored as its name (`steady`), in every format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum MetaLevel {
    /// Refuses every change to the meta state (while its store is copied elsewhere).
    Blind,
    /// No cure that adds load and no balance; failover still happens.
    Freezed,
    /// Cure only.
    Steady,
    /// Cure, and balance once everything is healthy.
    Lively,
}

impl MetaLevel {
    /// The Pegasus name, e.g. `fl_steady`.
    pub fn pegasus_name(self) -> &'static str {
        match self {
            MetaLevel::Blind => "fl_blind",
            MetaLevel::Freezed => "fl_freezed",
            MetaLevel::Steady => "fl_steady",
            MetaLevel::Lively => "fl_lively",
        }
    }
}

impl fmt::Display for MetaLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.pegasus_name())
    }
}

impl FromStr for MetaLevel {
    type Err = String;

    /// Accepts `steady` or `fl_steady`, in any case.
    fn from_str(text: &str) -> Result<Self, String> {
        let lower = text.trim().to_ascii_lowercase();
        match lower.strip_prefix("fl_").unwrap_or(&lower) {
            "blind" => Ok(MetaLevel::Blind),
            "freezed" => Ok(MetaLevel::Freezed),
            "steady" => Ok(MetaLevel::Steady),
            "lively" => Ok(MetaLevel::Lively),
            _ => Err(format!(
                "unknown value '{text}', expected one of: blind, freezed, steady, lively"
            )),
        }
    }
}

impl From<MetaLevel> for String {
    fn from(level: MetaLevel) -> String {
        match level {
            MetaLevel::Blind => "blind",
            MetaLevel::Freezed => "freezed",
            MetaLevel::Steady => "steady",
            MetaLevel::Lively => "lively",
        }
        .to_string()
    }
}

impl TryFrom<String> for MetaLevel {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_in_both_spellings() {
        assert_eq!("lively".parse::<MetaLevel>(), Ok(MetaLevel::Lively));
        assert_eq!("FL_BLIND".parse::<MetaLevel>(), Ok(MetaLevel::Blind));
        assert!("busy".parse::<MetaLevel>().unwrap_err().contains("expected one of"));
        assert_eq!(MetaLevel::Steady.to_string(), "fl_steady");
    }

    #[test]
    fn levels_round_trip_through_a_binary_codec() {
        for level in [
            MetaLevel::Blind,
            MetaLevel::Freezed,
            MetaLevel::Steady,
            MetaLevel::Lively,
        ] {
            let config = bincode::config::standard();
            let bytes = bincode::serde::encode_to_vec(level, config).unwrap();
            let (back, _): (MetaLevel, usize) = bincode::serde::decode_from_slice(&bytes, config).unwrap();
            assert_eq!(back, level);
        }
    }
}
