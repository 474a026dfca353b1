//! What a replica counts of the client requests it served since it opened: requests by kind and
//! the bytes read and written, which `app_stat` and the collector's table statistics report.

use aerie_proto::collector::REQUEST_KINDS;
use std::collections::BTreeMap;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Served {
    counts: [u64; REQUEST_KINDS.len()],
    pub read_bytes: u64,
    pub write_bytes: u64,
}

impl Served {
    /// Counts one request served; kinds outside [`REQUEST_KINDS`] (ttl, sortkey_count) count
    /// only their bytes.
    pub fn record(&mut self, kind: &str, bytes: u64, write: bool) {
        if let Some(i) = REQUEST_KINDS.iter().position(|(_, k)| *k == kind) {
            self.counts[i] += 1;
        }
        match write {
            true => self.write_bytes += bytes,
            false => self.read_bytes += bytes,
        }
    }

    /// The counts by kind name, as `ReplicaInfo::op_counts` carries them (kinds never served left out).
    pub fn op_counts(&self) -> BTreeMap<String, u64> {
        REQUEST_KINDS
            .iter()
            .zip(self.counts)
            .filter(|(_, n)| *n > 0)
            .map(|((_, kind), n)| (kind.to_string(), n))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_kinds_and_bytes_by_direction() {
        let mut served = Served::default();
        served.record("put", 10, true);
        served.record("put", 5, true);
        served.record("get", 7, false);
        served.record("ttl", 8, false);
        let counts = served.op_counts();
        assert_eq!(counts.get("put"), Some(&2));
        assert_eq!(counts.get("get"), Some(&1));
        assert_eq!(counts.len(), 2, "ttl is not one of the app_stat kinds: {counts:?}");
        assert_eq!((served.read_bytes, served.write_bytes), (15, 15));
    }
}
