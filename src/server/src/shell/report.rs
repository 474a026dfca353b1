//! Listings in the Pegasus shell's style: a `[section]` line, then padded columns (tables) or
//! `key : value` lines (pairs). The same report renders as JSON for `-j`.

use serde_json::{Map, Value};

pub enum Section {
    Table {
        name: String,
        columns: Vec<String>,
        rows: Vec<Vec<String>>,
    },
    Pairs {
        name: String,
        pairs: Vec<(String, String)>,
    },
}

#[derive(Default)]
pub struct Report {
    sections: Vec<Section>,
}

impl Report {
    pub fn table(&mut self, name: &str, columns: &[&str], rows: Vec<Vec<String>>) -> &mut Self {
        self.sections.push(Section::Table {
            name: name.to_string(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows,
        });
        self
    }

    pub fn pairs(&mut self, name: &str, pairs: Vec<(&str, String)>) -> &mut Self {
        self.sections.push(Section::Pairs {
            name: name.to_string(),
            pairs: pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        });
        self
    }

    pub fn render(&self, json: bool) -> String {
        if json {
            self.render_json()
        } else {
            self.render_text()
        }
    }

    pub fn render_text(&self) -> String {
        let mut out = String::new();
        for section in &self.sections {
            match section {
                Section::Table { name, columns, rows } => {
                    out.push_str(&format!("[{name}]\n"));
                    let mut widths: Vec<usize> = columns.iter().map(String::len).collect();
                    for row in rows {
                        for (i, cell) in row.iter().enumerate() {
                            if i < widths.len() {
                                widths[i] = widths[i].max(cell.len());
                            }
                        }
                    }
                    let line = |cells: &[String]| {
                        let mut text = String::new();
                        for (i, cell) in cells.iter().enumerate() {
                            if i + 1 == cells.len() {
                                text.push_str(cell);
                            } else {
                                text.push_str(&format!("{cell:<width$}  ", width = widths[i]));
                            }
                        }
                        text.trim_end().to_string() + "\n"
                    };
                    out.push_str(&line(columns));
                    for row in rows {
                        out.push_str(&line(row));
                    }
                }
                Section::Pairs { name, pairs } => {
                    out.push_str(&format!("[{name}]\n"));
                    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
                    for (key, value) in pairs {
                        out.push_str(format!("{key:<width$} : {value}").trim_end());
                        out.push('\n');
                    }
                }
            }
            out.push('\n');
        }
        out
    }

    pub fn render_json(&self) -> String {
        let mut root = Map::new();
        for section in &self.sections {
            match section {
                Section::Table { name, columns, rows } => {
                    let rows = rows
                        .iter()
                        .map(|row| {
                            Value::Object(
                                columns
                                    .iter()
                                    .zip(row)
                                    .map(|(c, v)| (c.clone(), Value::String(v.clone())))
                                    .collect(),
                            )
                        })
                        .collect();
                    root.insert(name.clone(), Value::Array(rows));
                }
                Section::Pairs { name, pairs } => {
                    let object = pairs
                        .iter()
                        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                        .collect();
                    root.insert(name.clone(), Value::Object(object));
                }
            }
        }
        serde_json::to_string_pretty(&Value::Object(root)).expect("json renders") + "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        let mut report = Report::default();
        report
            .table(
                "details",
                &["address", "status"],
                vec![vec!["127.0.0.1:34801".into(), "ALIVE".into()]],
            )
            .pairs(
                "summary",
                vec![("total_node_count", "1".into()), ("alive_node_count", "1".into())],
            );
        report
    }

    #[test]
    fn text_has_sections_padded_columns_and_pairs() {
        let text = sample().render_text();
        assert_eq!(
            text,
            "[details]\naddress          status\n127.0.0.1:34801  ALIVE\n\n[summary]\ntotal_node_count : 1\nalive_node_count : 1\n\n"
        );
    }

    #[test]
    fn json_keeps_sections_and_columns() {
        let value: Value = serde_json::from_str(&sample().render_json()).unwrap();
        assert_eq!(value["details"][0]["status"], "ALIVE");
        assert_eq!(value["summary"]["total_node_count"], "1");
    }
}
