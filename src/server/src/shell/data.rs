//! Data commands on the table chosen with `use`.

use super::admin::emit;
use super::commands::OutputArgs;
use super::escape::{escape, unescape};
use super::report::Report;
use super::Shell;
use aerie_client::Table;
use aerie_proto::data::{CheckAndSet, CheckType, Record, SortKeyRange, TtlUpdate};

const SCAN_BATCH: u32 = 1000;

fn record_line(record: &Record, no_value: bool) -> String {
    if no_value {
        format!("\"{}\" : \"{}\"\n", escape(&record.hash_key), escape(&record.sort_key))
    } else {
        format!(
            "\"{}\" : \"{}\" => \"{}\"\n",
            escape(&record.hash_key),
            escape(&record.sort_key),
            escape(&record.value)
        )
    }
}

/// The arguments of `check_and_set`, as typed.
pub struct CasArgs<'a> {
    pub hash_key: &'a str,
    pub check_sort_key: &'a str,
    pub check_type: &'a str,
    pub check_operand: &'a str,
    pub set_sort_key: Option<&'a str>,
    pub set_value: &'a str,
    pub ttl_seconds: u32,
    pub return_check_value: bool,
}

/// Pegasus's check type names.
fn parse_check(check_type: &str, operand: &str) -> Result<CheckType, String> {
    let bytes = || unescape(operand);
    let int = || {
        operand
            .parse::<i64>()
            .map_err(|_| format!("check type {check_type} needs an integer operand, not '{operand}'"))
    };
    Ok(match check_type {
        "no_check" => CheckType::NoCheck,
        "not_exist" => CheckType::ValueNotExist,
        "not_exist_or_empty" => CheckType::ValueNotExistOrEmpty,
        "exist" => CheckType::ValueExist,
        "not_empty" => CheckType::ValueNotEmpty,
        "match_anywhere" => CheckType::ValueMatchAnywhere(bytes()?),
        "match_prefix" => CheckType::ValueMatchPrefix(bytes()?),
        "match_postfix" => CheckType::ValueMatchPostfix(bytes()?),
        "bytes_less" => CheckType::ValueBytesLess(bytes()?),
        "bytes_less_or_equal" => CheckType::ValueBytesLessOrEqual(bytes()?),
        "bytes_equal" => CheckType::ValueBytesEqual(bytes()?),
        "bytes_greater_or_equal" => CheckType::ValueBytesGreaterOrEqual(bytes()?),
        "bytes_greater" => CheckType::ValueBytesGreater(bytes()?),
        "int_less" => CheckType::ValueIntLess(int()?),
        "int_less_or_equal" => CheckType::ValueIntLessOrEqual(int()?),
        "int_equal" => CheckType::ValueIntEqual(int()?),
        "int_greater_or_equal" => CheckType::ValueIntGreaterOrEqual(int()?),
        "int_greater" => CheckType::ValueIntGreater(int()?),
        other => return Err(format!("unknown check type '{other}'; see 'help check_and_set'")),
    })
}

impl Shell {
    fn table(&self) -> Result<Table, String> {
        self.current_table
            .clone()
            .ok_or_else(|| "no table selected; run 'use TABLE' first".to_string())
    }

    /// Where a key lives, as the Pegasus shell prints after single-key commands.
    fn routing_note(table: &Table, hash_key: &[u8], sort_key: &[u8]) -> String {
        let (gpid, primary) = table.locate(hash_key, sort_key);
        format!(
            "\napp_id          : {}\npartition_index : {}\nserver          : {}\n",
            gpid.app_id,
            gpid.pidx,
            primary.map(|p| p.to_string()).unwrap_or_else(|| "-".into())
        )
    }

    pub(super) fn use_table(&mut self, name: &str) -> Result<String, String> {
        let table = self.block(self.client.table(name))?;
        self.current_table = Some(table);
        Ok("OK\n".into())
    }

    pub(super) fn set(&mut self, hk: &str, sk: &str, value: &str, ttl: Option<u32>) -> Result<String, String> {
        let table = self.table()?;
        let (hk, sk, value) = (unescape(hk)?, unescape(sk)?, unescape(value)?);
        self.block(table.set(&hk, &sk, &value, ttl.unwrap_or(0)))?;
        Ok(format!("OK\n{}", Self::routing_note(&table, &hk, &sk)))
    }

    pub(super) fn get(&mut self, hk: &str, sk: &str) -> Result<String, String> {
        let table = self.table()?;
        let (hk, sk) = (unescape(hk)?, unescape(sk)?);
        let text = match self.block(table.get(&hk, &sk))? {
            Some(value) => format!("\"{}\"\n", escape(&value)),
            None => "Not found\n".to_string(),
        };
        Ok(text + &Self::routing_note(&table, &hk, &sk))
    }

    pub(super) fn del(&mut self, hk: &str, sk: &str) -> Result<String, String> {
        let table = self.table()?;
        let (hk, sk) = (unescape(hk)?, unescape(sk)?);
        self.block(table.del(&hk, &sk))?;
        Ok(format!("OK\n{}", Self::routing_note(&table, &hk, &sk)))
    }

    pub(super) fn multi_get(&mut self, hk: &str, sort_keys: &[String], max_count: u32) -> Result<String, String> {
        let table = self.table()?;
        let hk = unescape(hk)?;
        let (records, complete) = if sort_keys.is_empty() {
            self.block(table.multi_get_range(&hk, SortKeyRange::default(), max_count, false))?
        } else {
            let keys = sort_keys.iter().map(|k| unescape(k)).collect::<Result<Vec<_>, _>>()?;
            (self.block(table.multi_get(&hk, keys))?, true)
        };
        let mut text: String = records.iter().map(|r| record_line(r, false)).collect();
        text.push_str(&format!(
            "\n{} key-value pairs got{}.\n",
            records.len(),
            if complete {
                ""
            } else {
                ", more remain (raise --max_count)"
            }
        ));
        Ok(text)
    }

    pub(super) fn multi_set(&mut self, hk: &str, pairs: &[String], ttl: u32) -> Result<String, String> {
        if pairs.len() % 2 != 0 {
            return Err("multi_set takes SORT_KEY VALUE pairs; the last sort key has no value".into());
        }
        let table = self.table()?;
        let hk = unescape(hk)?;
        let kvs = pairs
            .chunks(2)
            .map(|kv| Ok((unescape(&kv[0])?, unescape(&kv[1])?)))
            .collect::<Result<Vec<_>, String>>()?;
        let count = kvs.len();
        self.block(table.multi_set(&hk, kvs, ttl))?;
        Ok(format!(
            "OK, {count} values written\n{}",
            Self::routing_note(&table, &hk, b"")
        ))
    }

    pub(super) fn multi_del(&mut self, hk: &str, sort_keys: &[String]) -> Result<String, String> {
        let table = self.table()?;
        let hk = unescape(hk)?;
        let keys = sort_keys.iter().map(|k| unescape(k)).collect::<Result<Vec<_>, _>>()?;
        let count = self.block(table.multi_del(&hk, keys))?;
        Ok(format!(
            "OK, {count} sort keys deleted\n{}",
            Self::routing_note(&table, &hk, b"")
        ))
    }

    pub(super) fn incr(&mut self, hk: &str, sk: &str, increment: i64) -> Result<String, String> {
        let table = self.table()?;
        let (hk, sk) = (unescape(hk)?, unescape(sk)?);
        let value = self.block(table.incr(&hk, &sk, increment, TtlUpdate::Keep))?;
        Ok(format!("{value}\n{}", Self::routing_note(&table, &hk, &sk)))
    }

    pub(super) fn check_and_set(&mut self, args: CasArgs<'_>) -> Result<String, String> {
        let table = self.table()?;
        let hash_key = unescape(args.hash_key)?;
        let check_sort_key = unescape(args.check_sort_key)?;
        let cas = CheckAndSet {
            check: parse_check(args.check_type, args.check_operand)?,
            set_sort_key: match args.set_sort_key {
                Some(key) => unescape(key)?,
                None => check_sort_key.clone(),
            },
            set_value: unescape(args.set_value)?,
            set_ttl_secs: args.ttl_seconds,
            return_check_value: args.return_check_value,
            hash_key: hash_key.clone(),
            check_sort_key,
        };
        let (set, check_value) = self.block(table.check_and_set(cas))?;
        let mut text = if set {
            "Set succeed.\n"
        } else {
            "Set failed, because check not passed.\n"
        }
        .to_string();
        if args.return_check_value {
            match check_value {
                Some(value) => text.push_str(&format!("Check value: \"{}\"\n", escape(&value))),
                None => text.push_str("Check value not exist.\n"),
            }
        }
        Ok(text + &Self::routing_note(&table, &hash_key, b""))
    }

    pub(super) fn sortkey_count(&mut self, hk: &str) -> Result<String, String> {
        let table = self.table()?;
        let hk = unescape(hk)?;
        let count = self.block(table.sortkey_count(&hk))?;
        Ok(format!("{count}\n{}", Self::routing_note(&table, &hk, b"")))
    }

    pub(super) fn ttl(&mut self, hk: &str, sk: &str) -> Result<String, String> {
        let table = self.table()?;
        let (hk, sk) = (unescape(hk)?, unescape(sk)?);
        let text = match self.block(table.ttl(&hk, &sk))? {
            None => "Not found\n".to_string(),
            Some(None) => "Infinite\n".to_string(),
            Some(Some(secs)) => format!("{secs}\n"),
        };
        Ok(text + &Self::routing_note(&table, &hk, &sk))
    }

    pub(super) fn scan(&mut self, hk: &str, max_count: u64, no_value: bool) -> Result<String, String> {
        let table = self.table()?;
        let hk = unescape(hk)?;
        let pidx = table.locate(&hk, b"").0.pidx;
        self.scan_partitions(&table, &[pidx], Some(hk), max_count, no_value)
    }

    pub(super) fn full_scan(&mut self, max_count: u64, no_value: bool) -> Result<String, String> {
        let table = self.table()?;
        let all: Vec<u32> = (0..table.partition_count()).collect();
        self.scan_partitions(&table, &all, None, max_count, no_value)
    }

    fn scan_partitions(
        &mut self,
        table: &Table,
        partitions: &[u32],
        hash_key: Option<Vec<u8>>,
        max_count: u64,
        no_value: bool,
    ) -> Result<String, String> {
        let mut text = String::new();
        let mut count = 0u64;
        'partitions: for &pidx in partitions {
            let mut after = None;
            loop {
                let (records, next) =
                    self.block(table.scan_page(pidx, hash_key.clone(), after, SCAN_BATCH, no_value))?;
                for record in &records {
                    if max_count > 0 && count >= max_count {
                        break 'partitions;
                    }
                    text.push_str(&record_line(record, no_value));
                    count += 1;
                }
                match next {
                    Some(cursor) => after = Some(cursor),
                    None => break,
                }
            }
        }
        text.push_str(&format!("\n{count} key-value pairs got.\n"));
        Ok(text)
    }

    pub(super) fn count_data(&mut self, detailed: bool, out: &OutputArgs) -> Result<String, String> {
        let table = self.table()?;
        let mut per_partition = Vec::new();
        for pidx in 0..table.partition_count() {
            let mut after = None;
            let mut count = 0u64;
            loop {
                let (records, next) = self.block(table.scan_page(pidx, None, after, SCAN_BATCH, true))?;
                count += records.len() as u64;
                match next {
                    Some(cursor) => after = Some(cursor),
                    None => break,
                }
            }
            per_partition.push(count);
        }
        let total: u64 = per_partition.iter().sum();
        let mut report = Report::default();
        if detailed {
            let rows = per_partition
                .iter()
                .enumerate()
                .map(|(pidx, count)| vec![pidx.to_string(), count.to_string()])
                .collect();
            report.table("partitions", &["pidx", "row_count"], rows);
        }
        report.pairs(
            "count",
            vec![("app_name", table.app().app_name), ("row_count", total.to_string())],
        );
        emit(&report, out)
    }
}
