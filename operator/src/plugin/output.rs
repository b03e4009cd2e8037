//! How the plugin prints: a table for people (columns padded, `-` for nothing), or the same
//! document as JSON or YAML for scripts (`-o json|yaml`).

use std::fmt::Write;

/// `-o`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    #[default]
    Table,
    Json,
    Yaml,
}

/// Rows under headers, printed with padded columns.
pub struct Table {
    pub title: Option<&'static str>,
    pub headers: &'static [&'static str],
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(title: Option<&'static str>, headers: &'static [&'static str]) -> Self {
        Self { title, headers, rows: Vec::new() }
    }

    /// A row; control characters in cells (a tenant-written condition message, a name) are
    /// shown as `?`, so nothing a tenant wrote can move the cursor or recolour the terminal.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells.into_iter().map(|c| if c.chars().any(char::is_control) { c.chars().map(|ch| if ch.is_control() { '?' } else { ch }).collect() } else { c }).collect());
    }

    pub fn render(&self, out: &mut String) {
        if let Some(t) = self.title {
            let _ = writeln!(out, "{t}");
        }
        if self.rows.is_empty() {
            let _ = writeln!(out, "  (none)");
            return;
        }
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.len()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate() {
                if let Some(w) = widths.get_mut(i) {
                    *w = (*w).max(c.chars().count());
                }
            }
        }
        let line = |cells: Vec<&str>, out: &mut String| {
            let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
            let _ = writeln!(out, "{}", padded.join("   ").trim_end());
        };
        line(self.headers.to_vec(), out);
        for r in &self.rows {
            line(r.iter().map(|c| if c.is_empty() { "-" } else { c.as_str() }).collect(), out);
        }
    }
}

/// Prints `doc` as `format` says; `tables` make the table form.
pub fn print(format: Format, doc: &serde_json::Value, tables: impl FnOnce() -> String) {
    match format {
        Format::Table => print!("{}", tables()),
        Format::Json => println!("{}", serde_json::to_string_pretty(doc).unwrap_or_default()),
        Format::Yaml => print!("{}", serde_saphyr::to_string(doc).unwrap_or_default()),
    }
}

/// A condition's status, reason and message from a status' `conditions`, or empty strings.
pub fn condition(conditions: &[cascade_crds::conditions::Condition], type_: &str) -> (String, String, String) {
    conditions.iter().find(|c| c.type_ == type_).map(|c| (c.status.clone(), c.reason.clone(), c.message.clone())).unwrap_or_default()
}

/// A message cut to `n` characters for a table cell (the full text is in `-o yaml`).
pub fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    format!("{}…", s.chars().take(n.saturating_sub(1)).collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_pad_columns_and_mark_empty_cells() {
        let mut t = Table::new(Some("KEYS"), &["NAMESPACE", "NAME", "LAST USED"]);
        t.row(vec!["shop".into(), "web".into(), String::new()]);
        t.row(vec!["blog".into(), "a-longer-name".into(), "2027-01-01T00:00:00Z".into()]);
        let mut out = String::new();
        t.render(&mut out);
        assert_eq!(out, "KEYS\nNAMESPACE   NAME            LAST USED\nshop        web             -\nblog        a-longer-name   2027-01-01T00:00:00Z\n");
        let mut empty = String::new();
        Table::new(None, &["A"]).render(&mut empty);
        assert_eq!(empty, "  (none)\n");
        assert_eq!(short("abcdef", 4), "abc…");
    }

    #[test]
    fn control_characters_in_cells_are_neutralised() {
        let mut t = Table::new(None, &["NAME"]);
        t.row(vec!["evil\x1b[31mred\r\nline".into()]);
        let mut out = String::new();
        t.render(&mut out);
        assert_eq!(out, "NAME\nevil?[31mred??line\n");
    }
}
