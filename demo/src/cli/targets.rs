//! The targets file of `campaign create` and `campaign add-targets`: CSV with a header
//! row. The columns `phone`, `name`, `key` (the target key; `target_key` too) and
//! `time_zone` fill the target's fields (matched without regard to case); every other
//! column is a variable of the target, named by its header, and an empty cell leaves the
//! variable to the campaign. A UTF-8 byte-order mark, quoted fields (commas, doubled
//! quotes, line breaks inside) and blank lines are fine.
//!
//! Each data line is judged on its own: a line whose field count differs from the
//! header's, that is not UTF-8 or whose phone is empty is refused with its line number
//! (the line it starts on, blank lines and quoted line breaks counted) and the rest go
//! on. Whether a number is E.164 is for the control plane to say, per target; the line
//! number travels with each target so its answer can be told by line too.

use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::sync::{Arc, Mutex, PoisonError};

use switchboard_proto::v1 as pb;

/// The header names of the target's own fields.
const PHONE: &str = "phone";
const NAME: &str = "name";
const KEYS: [&str; 2] = ["key", "target_key"];
const TIME_ZONE: &str = "time_zone";

/// A file that cannot be read as targets at all.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("the file is empty: its first line must be the header (phone,name,…)")]
    Empty,
    #[error("line {line}: the header has no `phone` column (phone, name, key, time_zone, then one column per variable)")]
    NoPhone { line: u64 },
    #[error("line {line}: column {column} of the header has no name")]
    Unnamed { line: u64, column: usize },
    #[error("line {line}: column {column} of the header repeats {name:?}")]
    Repeated {
        line: u64,
        column: usize,
        name: String,
    },
    #[error("line {line}: the header is not UTF-8")]
    HeaderNotUtf8 { line: u64 },
    #[error("read the file: {0}")]
    Read(#[source] csv::Error),
}

/// A data line refused before it is sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct LineError {
    /// 1-based, the header being line 1 (or later, after blank lines).
    pub line: u64,
    pub reason: String,
}

/// A target read from the file, with the line it starts on.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetLine {
    pub line: u64,
    pub target: pb::CampaignTarget,
}

/// Which column holds what.
#[derive(Debug, Clone)]
struct Columns {
    phone: usize,
    name: Option<usize>,
    key: Option<usize>,
    time_zone: Option<usize>,
    /// Every other column: its index and the variable's name.
    variables: Vec<(usize, String)>,
    width: usize,
}

impl Columns {
    fn from_header(header: &[String], line: u64) -> Result<Self, FileError> {
        let mut seen: HashMap<String, usize> = HashMap::new();
        let (mut phone, mut name, mut key, mut time_zone) = (None, None, None, None);
        let mut variables = Vec::new();
        for (i, raw) in header.iter().enumerate() {
            let column = i + 1;
            let title = raw.trim();
            if title.is_empty() {
                return Err(FileError::Unnamed { line, column });
            }
            let lower = title.to_lowercase();
            // `key` and `target_key` are one column.
            let canonical = if KEYS.contains(&lower.as_str()) {
                KEYS[0].to_owned()
            } else {
                lower.clone()
            };
            if seen.insert(canonical, column).is_some() {
                return Err(FileError::Repeated {
                    line,
                    column,
                    name: title.to_owned(),
                });
            }
            match lower.as_str() {
                PHONE => phone = Some(i),
                NAME => name = Some(i),
                TIME_ZONE => time_zone = Some(i),
                k if KEYS.contains(&k) => key = Some(i),
                _ => variables.push((i, title.to_owned())),
            }
        }
        Ok(Columns {
            phone: phone.ok_or(FileError::NoPhone { line })?,
            name,
            key,
            time_zone,
            variables,
            width: header.len(),
        })
    }

    /// The target of one data line's fields.
    fn target(&self, fields: &[String]) -> Result<pb::CampaignTarget, String> {
        if fields.len() != self.width {
            return Err(format!(
                "{} fields, but the header has {}",
                fields.len(),
                self.width
            ));
        }
        let cell = |i: Option<usize>| i.map(|i| fields[i].trim().to_owned()).unwrap_or_default();
        let phone = cell(Some(self.phone));
        if phone.is_empty() {
            return Err("phone is empty".into());
        }
        let variables = self
            .variables
            .iter()
            .filter(|(i, _)| !fields[*i].is_empty())
            .map(|(i, name)| (name.clone(), fields[*i].clone()))
            .collect();
        Ok(pb::CampaignTarget {
            phone,
            name: cell(self.name),
            target_key: cell(self.key),
            time_zone: cell(self.time_zone),
            variables,
            ..Default::default()
        })
    }
}

/// The targets of a CSV file, line by line; see the module docs.
#[derive(Debug)]
pub struct TargetFile<R> {
    reader: csv::Reader<Breaks<R>>,
    columns: Columns,
    lines: LineCounter,
    record: csv::ByteRecord,
    done: bool,
}

impl<R: Read> TargetFile<R> {
    /// Reads the header.
    pub fn new(input: R) -> Result<Self, FileError> {
        let breaks = Breaks {
            inner: input,
            offset: 0,
            seen: Arc::default(),
        };
        let mut lines = LineCounter {
            breaks: Arc::clone(&breaks.seen),
            newlines_before: 0,
        };
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(breaks);
        let mut record = csv::ByteRecord::new();
        if !reader
            .read_byte_record(&mut record)
            .map_err(FileError::Read)?
        {
            return Err(FileError::Empty);
        }
        let line = lines.line_of(&record);
        let header = fields(&record).map_err(|_| FileError::HeaderNotUtf8 { line })?;
        let columns = Columns::from_header(&header, line)?;
        Ok(Self {
            reader,
            columns,
            lines,
            record,
            done: false,
        })
    }
}

impl<R: Read> Iterator for TargetFile<R> {
    type Item = Result<TargetLine, LineError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.reader.read_byte_record(&mut self.record) {
            Ok(true) => {}
            Ok(false) => {
                self.done = true;
                return None;
            }
            Err(e) => {
                // Reading failed (not parsing: the parser takes any bytes): nothing after
                // this can be trusted.
                self.done = true;
                let line = self.lines.newlines_before + 1;
                return Some(Err(LineError {
                    line,
                    reason: format!("cannot read the file from here on: {e}"),
                }));
            }
        }
        let line = self.lines.line_of(&self.record);
        let parsed = fields(&self.record)
            .map_err(|column| format!("field {column} is not UTF-8"))
            .and_then(|fields| self.columns.target(&fields));
        Some(match parsed {
            Ok(target) => Ok(TargetLine { line, target }),
            Err(reason) => Err(LineError { line, reason }),
        })
    }
}

/// The record's fields as text, or the 1-based column of the first that is not UTF-8.
fn fields(record: &csv::ByteRecord) -> Result<Vec<String>, usize> {
    record
        .iter()
        .enumerate()
        .map(|(i, field)| {
            std::str::from_utf8(field)
                .map(str::to_owned)
                .map_err(|_| i + 1)
        })
        .collect()
}

/// Offsets of the line-break bytes (`\r`, `\n`) read so far and not yet counted.
type Seen = Arc<Mutex<VecDeque<(u64, u8)>>>;

/// Passes the file through to the parser, noting where each line-break byte is: the
/// parser skips blank lines without saying so, and its positions may stop short of a
/// record's `\r\n`.
#[derive(Debug)]
struct Breaks<R> {
    inner: R,
    offset: u64,
    seen: Seen,
}

impl<R: Read> Read for Breaks<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        for (i, byte) in buf[..n].iter().enumerate() {
            if matches!(byte, b'\r' | b'\n') {
                seen.push_back((self.offset + i as u64, *byte));
            }
        }
        self.offset += n as u64;
        Ok(n)
    }
}

/// Tells the line a record starts on from the breaks before it.
#[derive(Debug)]
struct LineCounter {
    breaks: Seen,
    /// `\n`s before the last record told.
    newlines_before: u64,
}

impl LineCounter {
    /// The 1-based line `record` (just read) starts on. Records are told in order.
    fn line_of(&mut self, record: &csv::ByteRecord) -> u64 {
        let Some(mut start) = record.position().map(csv::Position::byte) else {
            return self.newlines_before + 1;
        };
        let mut breaks = self.breaks.lock().unwrap_or_else(PoisonError::into_inner);
        // The previous records' own breaks, then the blank lines the parser skipped.
        while let Some(&(offset, byte)) = breaks.front() {
            if offset > start {
                break;
            }
            if offset == start {
                start += 1;
            }
            if byte == b'\n' {
                self.newlines_before += 1;
            }
            breaks.pop_front();
        }
        self.newlines_before + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Vec<Result<TargetLine, LineError>> {
        TargetFile::new(text.as_bytes()).unwrap().collect()
    }

    fn lines(results: &[Result<TargetLine, LineError>]) -> Vec<Result<u64, u64>> {
        results
            .iter()
            .map(|r| match r {
                Ok(t) => Ok(t.line),
                Err(e) => Err(e.line),
            })
            .collect()
    }

    #[test]
    fn the_header_names_the_fields_and_every_other_column_is_a_variable() {
        let results = read(
            "Phone, Name ,KEY,time_zone,plan,due\n\
             +14155550100,Ada,c-1,America/New_York,gold,2026-12-01\n\
             +14155550101,Bob,,,,\n",
        );
        let first = results[0].as_ref().unwrap();
        assert_eq!(first.line, 2);
        assert_eq!(first.target.phone, "+14155550100");
        assert_eq!(first.target.name, "Ada");
        assert_eq!(first.target.target_key, "c-1");
        assert_eq!(first.target.time_zone, "America/New_York");
        assert_eq!(
            first.target.variables,
            HashMap::from([
                ("plan".to_owned(), "gold".to_owned()),
                ("due".to_owned(), "2026-12-01".to_owned()),
            ])
        );
        // Empty cells: no key (the phone is), no zone (the window's), no variables (the
        // campaign's).
        let second = results[1].as_ref().unwrap();
        assert_eq!(second.line, 3);
        assert_eq!(second.target.target_key, "");
        assert!(second.target.variables.is_empty());
        assert_eq!(results.len(), 2);
    }

    #[test]
    fn a_header_without_phone_or_with_a_repeated_or_unnamed_column_is_refused() {
        let refused = |text: &str| TargetFile::new(text.as_bytes()).unwrap_err().to_string();
        assert!(refused("name,plan\nAda,gold\n").contains("no `phone` column"));
        assert!(refused("phone,plan,Plan\n").contains("column 3 of the header repeats \"Plan\""));
        assert!(refused("phone,key,target_key\n").contains("repeats \"target_key\""));
        assert!(refused("phone,,plan\n").contains("column 2 of the header has no name"));
        assert!(matches!(
            TargetFile::new(&b""[..]).unwrap_err(),
            FileError::Empty
        ));
        // Blank lines before the header count.
        assert!(refused("\n\nname\n").starts_with("line 3:"));
    }

    #[test]
    fn quoted_fields_keep_commas_quotes_and_line_breaks_and_lines_stay_counted() {
        let results = read(
            "phone,name,note\n\
             +14155550100,\"Lovelace, Ada\",\"said \"\"hi\"\"\nand left\"\n\
             \n\
             \"+14155550101\",Bob,x\r\n\
             +14155550102,Cy,y\n",
        );
        let targets: Vec<&TargetLine> = results.iter().map(|r| r.as_ref().unwrap()).collect();
        assert_eq!(targets[0].target.name, "Lovelace, Ada");
        assert_eq!(targets[0].target.variables["note"], "said \"hi\"\nand left");
        assert_eq!(targets[1].target.phone, "+14155550101");
        // Line 2 spans two lines, line 4 is blank, line 5 ends in \r\n.
        assert_eq!(lines(&results), [Ok(2), Ok(5), Ok(6)]);
    }

    #[test]
    fn windows_line_endings_and_blank_lines_count_once_each() {
        let results = read("phone,name\r\n\r\n+14155550100,Ada\r\n\r\n\r\n,Bob\r\n+14155550102,Cy");
        assert_eq!(lines(&results), [Ok(3), Err(6), Ok(7)]);
        assert_eq!(results[0].as_ref().unwrap().target.name, "Ada");
    }

    #[test]
    fn each_bad_line_is_refused_with_its_number_and_the_rest_go_on() {
        let results = read(
            "phone,name,plan\n\
             +14155550100,Ada,gold\n\
             +14155550101,Bob\n\
             ,Cy,gold\n\
             \x20 ,Di,gold\n\
             +14155550104,Ed,gold,extra\n\
             +14155550105,Flo,silver\n",
        );
        assert_eq!(
            lines(&results),
            [Ok(2), Err(3), Err(4), Err(5), Err(6), Ok(7)]
        );
        let reasons: Vec<String> = results
            .iter()
            .filter_map(|r| r.as_ref().err().map(ToString::to_string))
            .collect();
        assert_eq!(
            reasons,
            [
                "line 3: 2 fields, but the header has 3",
                "line 4: phone is empty",
                "line 5: phone is empty",
                "line 6: 4 fields, but the header has 3",
            ]
        );
    }

    #[test]
    fn a_line_that_is_not_utf8_is_refused_alone() {
        let mut text = b"phone,name\n+14155550100,".to_vec();
        text.extend_from_slice(&[0xff, 0xfe]);
        text.extend_from_slice(b"\n+14155550101,Bob\n");
        let results: Vec<_> = TargetFile::new(&text[..]).unwrap().collect();
        assert_eq!(lines(&results), [Err(2), Ok(3)]);
        assert_eq!(
            results[0].as_ref().unwrap_err().reason,
            "field 2 is not UTF-8"
        );
    }

    #[test]
    fn a_byte_order_mark_is_not_part_of_the_first_column() {
        let results = read("\u{feff}phone,name\n+14155550100,Ada\n");
        let target = &results[0].as_ref().unwrap().target;
        assert_eq!(target.phone, "+14155550100");
        assert!(target.variables.is_empty());
    }

    #[test]
    fn phones_and_fields_are_trimmed_but_variables_are_kept_as_written() {
        let results = read("phone,name,greeting\n +14155550100 , Ada , hello \n");
        let target = &results[0].as_ref().unwrap().target;
        assert_eq!(target.phone, "+14155550100");
        assert_eq!(target.name, "Ada");
        assert_eq!(target.variables["greeting"], " hello ");
    }

    #[test]
    fn lines_are_counted_across_the_parsers_buffer() {
        // Far more than one buffer of input, with blank lines in between.
        let mut text = String::from("phone\n");
        for i in 0..5_000 {
            text.push_str(&format!("+1415555{i:04}\n\n"));
        }
        text.push_str(",\n");
        let results = read(&text);
        assert_eq!(results.len(), 5_001);
        assert_eq!(results[4_999].as_ref().unwrap().line, 2 + 2 * 4_999);
        assert_eq!(results[5_000].as_ref().unwrap_err().line, 2 + 2 * 5_000);
    }
}
