//! LibreQoS's `ShapedDevices.csv`, read into checked [`Circuit`]s.
//!
//! One row is one device; rows with the same circuit id are one circuit
//! (one queue in each direction), and a row without a circuit id is a
//! circuit of its own. The columns are found by their header names
//! (LibreQoS's, any case), so their order and extra columns do not matter:
//!
//! `Circuit ID, Circuit Name, Device ID, Device Name, Parent Node, MAC,
//! IPv4, IPv6, Download Min Mbps, Upload Min Mbps, Download Max Mbps,
//! Upload Max Mbps, Comment` and, optionally, `sqm`.
//!
//! Every problem is reported at its cell as `FILE:LINE:COL`, like the
//! TOML's: a malformed cell, a duplicate device or address, min above max,
//! rows of one circuit that disagree. A parent node is kept as a name here;
//! whether it exists is checked against the hierarchy
//! ([`super::unknown_parents`]).
//!
//! The reader is written here rather than taken from the `csv` crate
//! because its errors must point at a cell's line and column in the file,
//! which a record reader that unquotes fields in place does not keep.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::Range;

use crate::diag::{self, Ctx, Span};
use crate::units::Rate;
use crate::Diagnostic;

/// The columns a ShapedDevices.csv must have, in LibreQoS's order.
pub const COLUMNS: [&str; 13] = [
    "Circuit ID",
    "Circuit Name",
    "Device ID",
    "Device Name",
    "Parent Node",
    "MAC",
    "IPv4",
    "IPv6",
    "Download Min Mbps",
    "Upload Min Mbps",
    "Download Max Mbps",
    "Upload Max Mbps",
    "Comment",
];

/// The optional per-circuit queue override column (LibreQoS 1.5).
pub const SQM_COLUMN: &str = "sqm";

/// A circuit: a subscriber's plan, shaped as one class per direction, and
/// the devices whose addresses it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Circuit {
    /// The circuit id of its rows, or for a row without one `device:` and
    /// its device id.
    pub id: String,
    pub name: String,
    /// The node (site or access point) it hangs under; None: the root.
    pub parent: Option<String>,
    /// Where its first row names the parent (line, column), for errors
    /// about it.
    pub parent_at: (u32, u32),
    pub download: Plan,
    pub upload: Plan,
    pub sqm: Sqm,
    pub devices: Vec<Device>,
    /// The line of its first row.
    pub line: u32,
}

/// One direction of a circuit's plan: `min` becomes the class's rate and
/// `max` its ceil.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    pub min: Rate,
    pub max: Rate,
}

/// A device of a circuit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    pub id: String,
    pub name: String,
    pub mac: Option<[u8; 6]>,
    pub ipv4: Vec<Prefix4>,
    pub ipv6: Vec<Prefix6>,
    pub comment: String,
    /// Its row's line.
    pub line: u32,
}

/// An IPv4 address or network: `addr` has no bits set past `len`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Prefix4 {
    pub addr: Ipv4Addr,
    pub len: u8,
}

/// An IPv6 address or network: `addr` has no bits set past `len`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Prefix6 {
    pub addr: Ipv6Addr,
    pub len: u8,
}

/// A circuit's leaf queue override per direction (LibreQoS's `sqm`
/// column: `cake`, `fq_codel`, `none`, or `DOWN/UP` with either side
/// empty). None on a side: the template's leaf.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sqm {
    pub download: Option<Leaf>,
    pub upload: Option<Leaf>,
}

/// A leaf queue LibreQoS names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leaf {
    FqCodel,
    Cake,
    /// No AQM: the class's plain queue.
    None,
}

/// What [`read_shaped_devices`] gives: the circuits in file order (by the
/// line of their first row), and warnings (columns it does not know).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShapedDevices {
    pub circuits: Vec<Circuit>,
    pub warnings: Vec<Diagnostic>,
}

/// Read a ShapedDevices.csv (`file` names it in diagnostics). Every error
/// in the file is reported, sorted by position.
pub fn read_shaped_devices(file: &str, text: &str) -> Result<ShapedDevices, Vec<Diagnostic>> {
    // A spreadsheet's export may start with a byte order mark, which
    // editors do not show: positions are counted after it.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut cx = Ctx::new(file, text);
    let circuits = Reader::new(&mut cx, text).read();
    let mut errors = std::mem::take(&mut cx.errors);
    if !errors.is_empty() {
        diag::sort(&mut errors);
        return Err(errors);
    }
    let mut warnings = std::mem::take(&mut cx.warnings);
    diag::sort(&mut warnings);
    Ok(ShapedDevices { circuits, warnings })
}

/// One cell: its text (unquoted; borrowed from the file unless it had
/// `""` in it) and where it is in the file.
struct Cell<'a> {
    text: Cow<'a, str>,
    at: Range<usize>,
}

/// One row's cells and where the row starts.
struct Row<'a> {
    cells: Vec<Cell<'a>>,
    start: usize,
}

/// The rows of a CSV text, one at a time (RFC 4180: `,` between cells,
/// `"` to quote a cell, `""` for a quote inside one, CRLF or LF between
/// rows). Lines whose first character is `#` are comments and blank lines
/// are skipped, as LibreQoS's example file has both. A quote left open is
/// an error at the quote and ends the rows; text after a closing quote is
/// an error and skips its row.
struct Rows<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Rows<'a> {
    fn new(text: &'a str) -> Rows<'a> {
        Rows { text, at: 0 }
    }

    fn next(&mut self, cx: &mut Ctx<'_>) -> Option<Row<'a>> {
        let text = self.text;
        let bytes = text.as_bytes();
        'rows: while self.at < bytes.len() {
            let mut i = self.at;
            let line_end = text[i..].find('\n').map_or(text.len(), |n| i + n);
            let line = text[i..line_end].trim_end_matches('\r');
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                self.at = line_end + 1;
                continue;
            }
            let start = i;
            let mut cells = Vec::new();
            loop {
                let (cell, next) = match bytes.get(i) {
                    Some(b'"') => match quoted(text, i) {
                        Some(found) => found,
                        None => {
                            cx.error(
                                &Some(i..i + 1),
                                "this quote is never closed: a quoted cell ends with a `\"` (a quote inside one is written `\"\"`)",
                            );
                            self.at = text.len();
                            return None;
                        }
                    },
                    _ => {
                        let end = text[i..].find([',', '\n']).map_or(text.len(), |n| i + n);
                        let raw = text[i..end].trim_end_matches('\r');
                        (
                            Cell {
                                text: Cow::Borrowed(raw),
                                at: i..i + raw.len(),
                            },
                            end,
                        )
                    }
                };
                cells.push(cell);
                match bytes.get(next) {
                    Some(b',') => i = next + 1,
                    Some(b'\r') if bytes.get(next + 1) == Some(&b'\n') => {
                        self.at = next + 2;
                        break;
                    }
                    Some(b'\n') => {
                        self.at = next + 1;
                        break;
                    }
                    None => {
                        self.at = next;
                        break;
                    }
                    Some(_) => {
                        cx.error(
                            &Some(next..next + 1),
                            "text after a quoted cell: a cell that starts with `\"` ends at the closing quote, before the next `,`",
                        );
                        self.at = text[next..].find('\n').map_or(text.len(), |n| next + n + 1);
                        continue 'rows;
                    }
                }
            }
            return Some(Row { cells, start });
        }
        None
    }
}

/// The quoted cell whose opening quote is at `open`, and the offset just
/// past its closing quote; None if it is never closed.
fn quoted(text: &str, open: usize) -> Option<(Cell<'_>, usize)> {
    let bytes = text.as_bytes();
    let mut owned: Option<String> = None;
    let mut i = open + 1;
    let mut from = i;
    loop {
        let q = text[i..].find('"')? + i;
        if bytes.get(q + 1) == Some(&b'"') {
            owned
                .get_or_insert_with(String::new)
                .push_str(&text[from..=q]);
            i = q + 2;
            from = i;
            continue;
        }
        let text = match owned {
            None => Cow::Borrowed(&text[from..q]),
            Some(mut s) => {
                s.push_str(&text[from..q]);
                Cow::Owned(s)
            }
        };
        return Some((
            Cell {
                text,
                at: open..q + 1,
            },
            q + 1,
        ));
    }
}

/// Where each column is in a row.
struct Columns {
    /// Index of each of [`COLUMNS`], in that order.
    index: [usize; COLUMNS.len()],
    sqm: Option<usize>,
    count: usize,
}

const CIRCUIT_ID: usize = 0;
const CIRCUIT_NAME: usize = 1;
const DEVICE_ID: usize = 2;
const DEVICE_NAME: usize = 3;
const PARENT: usize = 4;
const MAC: usize = 5;
const IPV4: usize = 6;
const IPV6: usize = 7;
const DOWN_MIN: usize = 8;
const UP_MIN: usize = 9;
const DOWN_MAX: usize = 10;
const UP_MAX: usize = 11;
const COMMENT: usize = 12;

struct Reader<'c, 'a> {
    cx: &'c mut Ctx<'a>,
    text: &'a str,
}

impl<'c, 'a> Reader<'c, 'a> {
    fn new(cx: &'c mut Ctx<'a>, text: &'a str) -> Reader<'c, 'a> {
        Reader { cx, text }
    }

    fn read(&mut self) -> Vec<Circuit> {
        let mut rows = Rows::new(self.text);
        let Some(header) = rows.next(self.cx) else {
            self.cx.error(
                &None,
                format!(
                    "no header row: a ShapedDevices.csv starts with the column names ({})",
                    COLUMNS.join(",")
                ),
            );
            return Vec::new();
        };
        let Some(columns) = self.columns(&header) else {
            return Vec::new();
        };
        let mut circuits: Vec<Circuit> = Vec::new();
        let mut by_id: HashMap<String, usize> = HashMap::new();
        let mut devices: HashMap<String, Span> = HashMap::new();
        let mut addresses: HashMap<Address, Span> = HashMap::new();
        while let Some(row) = rows.next(self.cx) {
            let row = &row;
            if row.cells.len() != columns.count {
                let at = row
                    .cells
                    .get(columns.count)
                    .map_or(Some(row.start..row.start), |c| Some(c.at.clone()));
                self.cx.error(
                    &at,
                    format!(
                        "this row has {} cells and the header {}: a cell with a `,` in it is quoted (\"a, b\")",
                        row.cells.len(),
                        columns.count
                    ),
                );
                continue;
            }
            let cell = |c: usize| &row.cells[columns.index[c]];
            let Some(device) = self.device(row, &columns, &mut devices, &mut addresses) else {
                continue;
            };
            let plans = (
                self.plan(cell(DOWN_MIN), cell(DOWN_MAX), "Download"),
                self.plan(cell(UP_MIN), cell(UP_MAX), "Upload"),
            );
            let sqm = match columns.sqm {
                Some(c) => self.sqm(&row.cells[c]),
                None => Some(Sqm::default()),
            };
            let (Some(download), Some(upload), Some(sqm)) = (plans.0, plans.1, sqm) else {
                continue;
            };
            let id_cell = cell(CIRCUIT_ID);
            let id = id_cell.text.trim();
            let parent = Some(cell(PARENT).text.trim())
                .filter(|p| !p.is_empty())
                .map(str::to_string);
            let line = self.cx.line_of(&Some(row.start..row.start));
            let p = self
                .cx
                .diagnostic(&Some(cell(PARENT).at.clone()), String::new());
            let circuit = Circuit {
                id: if id.is_empty() {
                    format!("device:{}", device.id)
                } else {
                    id.to_string()
                },
                name: cell(CIRCUIT_NAME).text.trim().to_string(),
                parent,
                parent_at: (p.line, p.col),
                download,
                upload,
                sqm,
                devices: Vec::new(),
                line,
            };
            let k = match by_id.get(&circuit.id) {
                Some(&k) => {
                    self.same_circuit(&circuits[k], &circuit, row, &columns);
                    k
                }
                None => {
                    by_id.insert(circuit.id.clone(), circuits.len());
                    circuits.push(circuit);
                    circuits.len() - 1
                }
            };
            circuits[k].devices.push(device);
        }
        circuits
    }

    /// Find the columns by name in the header row.
    fn columns(&mut self, header: &Row) -> Option<Columns> {
        let mut index = [usize::MAX; COLUMNS.len()];
        let mut sqm = None;
        let mut seen: HashMap<String, Span> = HashMap::new();
        for (i, cell) in header.cells.iter().enumerate() {
            let name = cell.text.trim().to_ascii_lowercase();
            let at = Some(cell.at.clone());
            if let Some(first) = seen.insert(name.clone(), at.clone()) {
                let line = self.cx.line_of(&first);
                self.cx.error(
                    &at,
                    format!(
                        "column `{}` is named twice (first on line {line})",
                        cell.text.trim()
                    ),
                );
                continue;
            }
            match COLUMNS.iter().position(|c| c.to_ascii_lowercase() == name) {
                Some(c) => index[c] = i,
                None if name == SQM_COLUMN => sqm = Some(i),
                None => self.cx.warn(
                    &at,
                    format!(
                        "column `{}` is not one weir reads: ignored",
                        cell.text.trim()
                    ),
                ),
            }
        }
        let missing: Vec<&str> = COLUMNS
            .iter()
            .zip(index)
            .filter(|&(_, i)| i == usize::MAX)
            .map(|(c, _)| *c)
            .collect();
        if !missing.is_empty() {
            self.cx.error(
                &Some(header.start..header.start),
                format!(
                    "the header lacks the column{} {}: a ShapedDevices.csv has {}",
                    if missing.len() == 1 { "" } else { "s" },
                    missing.join(", "),
                    COLUMNS.join(",")
                ),
            );
            return None;
        }
        Some(Columns {
            index,
            sqm,
            count: header.cells.len(),
        })
    }

    /// The device of a row, its addresses checked against every other
    /// row's.
    fn device(
        &mut self,
        row: &Row,
        columns: &Columns,
        devices: &mut HashMap<String, Span>,
        addresses: &mut HashMap<Address, Span>,
    ) -> Option<Device> {
        let cell = |c: usize| &row.cells[columns.index[c]];
        let id_cell = cell(DEVICE_ID);
        let id = id_cell.text.trim();
        let at = Some(id_cell.at.clone());
        if id.is_empty() {
            self.cx.error(&at, "a device needs an id (`Device ID`)");
            return None;
        }
        if let Some(first) = devices.insert(id.to_string(), at.clone()) {
            let line = self.cx.line_of(&first);
            self.cx.error(
                &at,
                format!("device id `{id}` again (first on line {line}): each row is one device"),
            );
            return None;
        }
        let mac = self.mac(cell(MAC));
        let mut ok = mac.is_some();
        let ipv4 = self.addresses(
            cell(IPV4),
            "IPv4",
            parse_prefix4,
            Address::V4,
            addresses,
            &mut ok,
        );
        let ipv6 = self.addresses(
            cell(IPV6),
            "IPv6",
            parse_prefix6,
            Address::V6,
            addresses,
            &mut ok,
        );
        if ok && ipv4.is_empty() && ipv6.is_empty() {
            self.cx.error(
                &Some(cell(IPV4).at.clone()),
                format!("device `{id}` has no address: nothing of it could be shaped (IPv4 and IPv6 are both empty)"),
            );
            return None;
        }
        ok.then(|| Device {
            id: id.to_string(),
            name: cell(DEVICE_NAME).text.trim().to_string(),
            mac: mac.flatten(),
            ipv4,
            ipv6,
            comment: cell(COMMENT).text.trim().to_string(),
            line: self.cx.line_of(&Some(row.start..row.start)),
        })
    }

    /// The addresses or prefixes of an IPv4 or IPv6 cell (`column`), each
    /// checked against every other row's; `ok` is cleared on any error.
    fn addresses<P: Copy>(
        &mut self,
        cell: &Cell<'_>,
        column: &str,
        parse: fn(&str) -> Result<P, String>,
        address: fn(P) -> Address,
        seen: &mut HashMap<Address, Span>,
        ok: &mut bool,
    ) -> Vec<P> {
        let mut out = Vec::new();
        for (text, at) in items(cell) {
            match parse(text) {
                Ok(p) => {
                    *ok &= self.unique(seen, address(p), &at, text);
                    out.push(p);
                }
                Err(why) => {
                    self.cx.error(&at, format!("`{text}` in {column}: {why}"));
                    *ok = false;
                }
            }
        }
        out
    }

    /// False (and an error) when `addr` was given before.
    fn unique(
        &mut self,
        seen: &mut HashMap<Address, Span>,
        addr: Address,
        at: &Span,
        text: &str,
    ) -> bool {
        match seen.insert(addr, at.clone()) {
            None => true,
            Some(first) => {
                let first = self.cx.diagnostic(&first, String::new());
                self.cx.error(
                    at,
                    format!(
                        "`{text}` again (first at {}:{}): an address belongs to one device",
                        first.line, first.col
                    ),
                );
                false
            }
        }
    }

    /// A MAC cell: empty, or six hex bytes separated by `:` or `-`. The
    /// outer None is an error (reported).
    fn mac(&mut self, cell: &Cell) -> Option<Option<[u8; 6]>> {
        let t = cell.text.trim();
        if t.is_empty() {
            return Some(None);
        }
        let parts: Vec<&str> = t.split([':', '-']).collect();
        let mut mac = [0u8; 6];
        let ok = parts.len() == 6
            && parts
                .iter()
                .zip(mac.iter_mut())
                .all(|(p, b)| p.len() == 2 && u8::from_str_radix(p, 16).map(|v| *b = v).is_ok());
        if !ok {
            self.cx.error(
                &Some(cell.at.clone()),
                format!("`{t}` is not a MAC address: expected six hex bytes, as 00:1b:21:3a:4f:5c"),
            );
            return None;
        }
        Some(Some(mac))
    }

    /// One direction's plan from its min and max cells (fractional Mbps).
    fn plan(&mut self, min: &Cell, max: &Cell, what: &str) -> Option<Plan> {
        let min_rate = self.mbps(min, &format!("{what} Min Mbps"));
        let max_rate = self.mbps(max, &format!("{what} Max Mbps"));
        let (min_rate, max_rate) = (min_rate?, max_rate?);
        if min_rate > max_rate {
            self.cx.error(
                &Some(min.at.clone()),
                format!(
                    "{what} Min Mbps ({}) is above {what} Max Mbps ({}): the guaranteed rate cannot exceed the most the circuit may use",
                    min.text.trim(),
                    max.text.trim()
                ),
            );
            return None;
        }
        Some(Plan {
            min: min_rate,
            max: max_rate,
        })
    }

    /// A rate cell in Mbps, decimals allowed (`2.5` is 2,500,000 bit/s).
    fn mbps(&mut self, cell: &Cell, column: &str) -> Option<Rate> {
        let t = cell.text.trim();
        let at = Some(cell.at.clone());
        let valid = !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit() || b == b'.');
        match valid.then(|| Rate::parse(&format!("{t}mbit"), None)) {
            Some(Ok(r)) if r.bytes_per_sec() > 0 => Some(r),
            Some(Ok(r)) if r.bits_per_sec() > 0 => {
                self.cx.error(
                    &at,
                    format!("{column} `{t}` is below 1 byte/s, the least a class can be given; expected at least 0.000008"),
                );
                None
            }
            Some(Ok(_)) => {
                self.cx.error(
                    &at,
                    format!("{column} is 0: a circuit with no rate would have everything it sends dropped"),
                );
                None
            }
            Some(Err(e)) => {
                self.cx.error(&at, format!("{column} `{t}`: {e}"));
                None
            }
            None => {
                self.cx.error(
                    &at,
                    format!("{column} `{t}` is not a number of Mbps: expected digits with an optional decimal point, as 25 or 2.5"),
                );
                None
            }
        }
    }

    /// The `sqm` cell.
    fn sqm(&mut self, cell: &Cell) -> Option<Sqm> {
        let t = cell.text.trim().to_ascii_lowercase();
        let (down, up) = match t.split_once('/') {
            Some((d, u)) => (d.trim(), u.trim()),
            None => (t.as_str(), t.as_str()),
        };
        let leaf = |s: &str| match s {
            "" => Ok(None),
            "fq_codel" => Ok(Some(Leaf::FqCodel)),
            "cake" => Ok(Some(Leaf::Cake)),
            "none" => Ok(Some(Leaf::None)),
            _ => Err(()),
        };
        match (leaf(down), leaf(up)) {
            (Ok(download), Ok(upload)) => Some(Sqm { download, upload }),
            _ => {
                self.cx.error(
                    &Some(cell.at.clone()),
                    format!("sqm `{}`: expected cake, fq_codel, none, or DOWN/UP with either side empty (cake/fq_codel, /none)", cell.text.trim()),
                );
                None
            }
        }
    }

    /// A later row of a circuit must agree with its first on the circuit's
    /// own cells.
    fn same_circuit(&mut self, first: &Circuit, now: &Circuit, row: &Row<'_>, columns: &Columns) {
        let text = |s: Option<&str>| shown(s.unwrap_or("")).to_string();
        let checks: [(usize, String, String); 6] = [
            (CIRCUIT_NAME, text(Some(&first.name)), text(Some(&now.name))),
            (
                PARENT,
                text(first.parent.as_deref()),
                text(now.parent.as_deref()),
            ),
            (
                DOWN_MIN,
                first.download.min.to_string(),
                now.download.min.to_string(),
            ),
            (
                DOWN_MAX,
                first.download.max.to_string(),
                now.download.max.to_string(),
            ),
            (
                UP_MIN,
                first.upload.min.to_string(),
                now.upload.min.to_string(),
            ),
            (
                UP_MAX,
                first.upload.max.to_string(),
                now.upload.max.to_string(),
            ),
        ];
        for (col, was, is) in checks {
            if was != is {
                self.cx.error(
                    &Some(row.cells[columns.index[col]].at.clone()),
                    format!(
                        "circuit `{}` has {} `{was}` on line {} and `{is}` here: the rows of one circuit give it once",
                        now.id, COLUMNS[col], first.line
                    ),
                );
            }
        }
        if let (Some(sqm), false) = (columns.sqm, first.sqm == now.sqm) {
            self.cx.error(
                &Some(row.cells[sqm].at.clone()),
                format!(
                    "circuit `{}` has another sqm on line {}: the rows of one circuit give it once",
                    now.id, first.line
                ),
            );
        }
    }
}

/// A cell's text for a message, `(empty)` when it is.
fn shown(t: &str) -> &str {
    if t.is_empty() {
        "(empty)"
    } else {
        t
    }
}

/// An address or network of either family, for duplicate checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Address {
    V4(Prefix4),
    V6(Prefix6),
}

/// The addresses of an IPv4 or IPv6 cell: separated by `,` or spaces
/// (LibreQoS writes `"100.64.0.1, 100.64.0.14"`), each with its span.
fn items<'c>(cell: &'c Cell<'_>) -> Vec<(&'c str, Span)> {
    // The cell's text is the file's text when unquoted; when quoted (and
    // without `""` inside, which an address list never has), it starts one
    // byte after the opening quote.
    let base = if cell.at.len() == cell.text.len() {
        cell.at.start
    } else {
        cell.at.start + 1
    };
    let mut out = Vec::new();
    let mut at = 0;
    for part in cell.text.split([',', ' ', '\t']) {
        if !part.is_empty() {
            out.push((part, Some(base + at..base + at + part.len())));
        }
        at += part.len() + 1;
    }
    out
}

/// `a.b.c.d` or `a.b.c.d/len`, with no host bits set past `len`.
fn parse_prefix4(s: &str) -> Result<Prefix4, String> {
    let (text, len) = split_len(s, 32)?;
    let addr: Ipv4Addr = text
        .parse()
        .map_err(|_| "not an IPv4 address (a.b.c.d or a.b.c.d/len)".to_string())?;
    no_host_bits(u128::from(u32::from(addr)), len, 32, |n| {
        Ipv4Addr::from(n as u32).to_string()
    })?;
    Ok(Prefix4 { addr, len })
}

/// An IPv6 address or network, with no host bits set past `len`.
fn parse_prefix6(s: &str) -> Result<Prefix6, String> {
    let (text, len) = split_len(s, 128)?;
    let addr: Ipv6Addr = text
        .parse()
        .map_err(|_| "not an IPv6 address (as 2001:db8::1 or 2001:db8::/48)".to_string())?;
    no_host_bits(u128::from(addr), len, 128, |n| {
        Ipv6Addr::from(n).to_string()
    })?;
    Ok(Prefix6 { addr, len })
}

/// An error when `bits` (an address `width` bits wide) has bits set past
/// `len`, naming the network that was probably meant (`show` prints one).
fn no_host_bits(
    bits: u128,
    len: u8,
    width: u8,
    show: impl Fn(u128) -> String,
) -> Result<(), String> {
    let net = match len {
        0 => 0,
        _ => bits & (u128::MAX << (width - len)) & (u128::MAX >> (128 - width)),
    };
    if net == bits {
        return Ok(());
    }
    Err(format!(
        "host bits set past /{len}: the network is {}/{len}",
        show(net)
    ))
}

/// An address and its prefix length (`max` when there is none).
fn split_len(s: &str, max: u8) -> Result<(&str, u8), String> {
    match s.split_once('/') {
        None => Ok((s, max)),
        Some((a, l)) => match l.parse::<u8>() {
            Ok(len) if len <= max => Ok((a, len)),
            _ => Err(format!("the prefix length `{l}` is not 0 to {max}")),
        },
    }
}

/// `circuits` as a ShapedDevices.csv that reads back to them: one row per
/// device, LibreQoS's columns and `sqm`, cells quoted where they need it,
/// rates as exact decimal Mbps. For `weir circuit`, which changes the
/// circuits in memory and compiles them again through the same checks.
pub fn write_shaped_devices(circuits: &[Circuit]) -> String {
    let mut s = COLUMNS.join(",");
    s.push(',');
    s.push_str(SQM_COLUMN);
    s.push('\n');
    for c in circuits {
        let leaf = |l: Option<Leaf>| match l {
            None => "",
            Some(Leaf::FqCodel) => "fq_codel",
            Some(Leaf::Cake) => "cake",
            Some(Leaf::None) => "none",
        };
        let sqm = match (c.sqm.download, c.sqm.upload) {
            (None, None) => String::new(),
            (d, u) => format!("{}/{}", leaf(d), leaf(u)),
        };
        for d in &c.devices {
            let mac = d.mac.map_or_else(String::new, |m| {
                m.iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(":")
            });
            let v4: Vec<String> = d
                .ipv4
                .iter()
                .map(|p| {
                    if p.len == 32 {
                        p.addr.to_string()
                    } else {
                        format!("{}/{}", p.addr, p.len)
                    }
                })
                .collect();
            let v6: Vec<String> = d
                .ipv6
                .iter()
                .map(|p| {
                    if p.len == 128 {
                        p.addr.to_string()
                    } else {
                        format!("{}/{}", p.addr, p.len)
                    }
                })
                .collect();
            let cells = [
                c.id.clone(),
                c.name.clone(),
                d.id.clone(),
                d.name.clone(),
                c.parent.clone().unwrap_or_default(),
                mac,
                v4.join(", "),
                v6.join(", "),
                mbps(c.download.min),
                mbps(c.upload.min),
                mbps(c.download.max),
                mbps(c.upload.max),
                d.comment.clone(),
                sqm.clone(),
            ];
            s.push_str(&csv_row(&cells));
            s.push('\n');
        }
    }
    s
}

/// A rate as exact decimal Mbps (`2.5`, `0.25`, `100`).
fn mbps(r: Rate) -> String {
    let bits = r.bits_per_sec();
    let (whole, frac) = (bits / 1_000_000, bits % 1_000_000);
    if frac == 0 {
        return whole.to_string();
    }
    let digits = format!("{frac:06}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// One row of a CSV file (no line end), each cell quoted as it needs.
pub fn csv_row(cells: &[String]) -> String {
    cells
        .iter()
        .map(|c| csv_cell(c))
        .collect::<Vec<_>>()
        .join(",")
}

/// A CSV cell, quoted when it holds a comma, a quote, a line break, a `#`
/// at its start or spaces at its ends.
fn csv_cell(s: &str) -> String {
    let needs = s.contains([',', '"', '\n', '\r'])
        || s.starts_with('#')
        || s.starts_with(' ')
        || s.ends_with(' ');
    if needs {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn written_circuits_read_back_the_same() {
        let text = concat!(
            "Circuit ID,Circuit Name,Device ID,Device Name,Parent Node,MAC,IPv4,IPv6,Download Min Mbps,Upload Min Mbps,Download Max Mbps,Upload Max Mbps,Comment,sqm\n",
            "1,\"One, \"\"Inc\"\"\",d1,D,AP_A,00:1b:21:3a:4f:5c,\"198.18.0.1, 198.18.1.0/24\",2001:db8::/48,1.5,0.25,10,10,\"a, b\",cake/\n",
            "1,\"One, \"\"Inc\"\"\",d2,D,AP_A,,198.18.0.2,,1.5,0.25,10,10,,cake/\n",
            ",,d3,# not a comment,,,198.18.0.3,2001:db8:1::1,0.001,1,2,3, padded ,none\n",
        );
        let first = read_shaped_devices("a.csv", text).expect("reads").circuits;
        let written = write_shaped_devices(&first);
        let again = read_shaped_devices("b.csv", &written)
            .expect("reads back")
            .circuits;
        // Lines differ (the file's rows), everything else is the same.
        let strip = |cs: Vec<Circuit>| {
            cs.into_iter()
                .map(|mut c| {
                    c.line = 0;
                    c.parent_at = (0, 0);
                    c.devices.iter_mut().for_each(|d| d.line = 0);
                    c
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(strip(again), strip(first), "{written}");
    }
    use super::*;

    const HEADER: &str = "Circuit ID,Circuit Name,Device ID,Device Name,Parent Node,MAC,IPv4,IPv6,Download Min Mbps,Upload Min Mbps,Download Max Mbps,Upload Max Mbps,Comment\n";

    fn read(body: &str) -> Result<ShapedDevices, Vec<String>> {
        read_shaped_devices("ShapedDevices.csv", &format!("{HEADER}{body}"))
            .map_err(|e| e.iter().map(ToString::to_string).collect())
    }

    fn mbit(m: u64) -> Rate {
        Rate::from_bits_per_sec(m * 1_000_000)
    }

    #[test]
    fn rows_become_circuits_with_their_devices() {
        let got = read(concat!(
            "# a comment, and a blank line next\n",
            "\n",
            "1,\"968 Circle St., Gurnee\",1,Device 1,AP_A,00:1b:21:3a:4f:5c,\"100.64.0.1, 100.64.0.14\",fdd7:b724:0:100::/56,1,1,155,20,Standard\n",
            "2794,Littleton,5,Device 5,AP_11,,100.64.0.5,,1,1,105,18,\n",
            "2794,Littleton,6,Device 6,AP_11,,100.64.0.6 100.64.1.0/24,,1,1,105,18,second device\r\n",
            ",,7,Lone,,,198.18.0.7,,0.5,0.25,2.5,1.5,no circuit id",
        ))
        .expect("reads");
        assert!(got.warnings.is_empty(), "{:?}", got.warnings);
        let c = &got.circuits;
        assert_eq!(c.len(), 3);
        assert_eq!(
            (c[0].id.as_str(), c[0].name.as_str()),
            ("1", "968 Circle St., Gurnee")
        );
        assert_eq!(c[0].parent.as_deref(), Some("AP_A"));
        assert_eq!(
            c[0].download,
            Plan {
                min: mbit(1),
                max: mbit(155)
            }
        );
        assert_eq!(
            c[0].upload,
            Plan {
                min: mbit(1),
                max: mbit(20)
            }
        );
        assert_eq!(c[0].line, 4);
        let d = &c[0].devices[0];
        assert_eq!(d.mac, Some([0x00, 0x1b, 0x21, 0x3a, 0x4f, 0x5c]));
        assert_eq!(
            d.ipv4,
            vec![
                Prefix4 {
                    addr: Ipv4Addr::new(100, 64, 0, 1),
                    len: 32
                },
                Prefix4 {
                    addr: Ipv4Addr::new(100, 64, 0, 14),
                    len: 32
                },
            ]
        );
        assert_eq!(d.ipv6[0].len, 56);
        assert_eq!(c[1].id, "2794");
        assert_eq!(c[1].devices.len(), 2);
        assert_eq!(
            c[1].devices[1].ipv4[1],
            Prefix4 {
                addr: Ipv4Addr::new(100, 64, 1, 0),
                len: 24
            }
        );
        assert_eq!(c[1].devices[1].comment, "second device");
        assert_eq!(c[2].id, "device:7");
        assert_eq!(c[2].parent, None);
        assert_eq!(c[2].download.min, Rate::from_bits_per_sec(500_000));
        assert_eq!(
            c[2].upload,
            Plan {
                min: Rate::from_bits_per_sec(250_000),
                max: Rate::from_bits_per_sec(1_500_000)
            }
        );
    }

    #[test]
    fn columns_are_found_by_name_and_sqm_is_read() {
        let text = concat!(
            "ipv4,Device ID,circuit id,Circuit Name,Device Name,Parent Node,MAC,IPv6,Download Min Mbps,Upload Min Mbps,Download Max Mbps,Upload Max Mbps,Comment,sqm,Extra\n",
            "198.18.0.1,d1,c1,One,Dev,,,,10,5,100,50,,cake/fq_codel,x\n",
            "198.18.0.2,d2,c2,Two,Dev,,,,10,5,100,50,,/none,x\n",
        );
        let got = read_shaped_devices("s.csv", text).expect("reads");
        assert_eq!(got.warnings.len(), 1);
        assert_eq!(
            got.warnings[0].to_string(),
            "s.csv:1:153: column `Extra` is not one weir reads: ignored"
        );
        assert_eq!(
            got.circuits[0].sqm,
            Sqm {
                download: Some(Leaf::Cake),
                upload: Some(Leaf::FqCodel)
            }
        );
        assert_eq!(
            got.circuits[1].sqm,
            Sqm {
                download: None,
                upload: Some(Leaf::None)
            }
        );
        assert_eq!(
            got.circuits[0].devices[0].ipv4[0].addr,
            Ipv4Addr::new(198, 18, 0, 1)
        );
    }

    #[test]
    fn errors_point_at_their_cells() {
        let errors = read(concat!(
            "1,A,d1,D,,,198.18.0.1,,10,5,100,50,\n",
            "2,B,d2,D,,,198.18.0.1,,10,5,100,50,\n",
            "3,C,d1,D,,,198.18.0.3,,10,5,100,50,\n",
            "4,D,d4,D,,zz:1b,198.18.0.4/24,2001:db8::1/200,10,5,100,50,\n",
            "5,E,d5,D,,,198.18.0.5,,100,5,10,x,\n",
            "6,F,d6,D,,,198.18.0.6,,10,5,100,50,a, b\n",
            "7,G,d7,D,,,,,10,5,100,50,\n",
            "1,A,d8,D,AP,,198.18.0.8,,10,5,90,50,\n",
        ))
        .expect_err("bad rows");
        let want = [
            "ShapedDevices.csv:3:12: `198.18.0.1` again (first at 2:12): an address belongs to one device",
            "ShapedDevices.csv:4:5: device id `d1` again (first on line 2): each row is one device",
            "ShapedDevices.csv:5:11: `zz:1b` is not a MAC address: expected six hex bytes, as 00:1b:21:3a:4f:5c",
            "ShapedDevices.csv:5:17: `198.18.0.4/24` in IPv4: host bits set past /24: the network is 198.18.0.0/24",
            "ShapedDevices.csv:5:31: `2001:db8::1/200` in IPv6: the prefix length `200` is not 0 to 128",
            "ShapedDevices.csv:6:24: Download Min Mbps (100) is above Download Max Mbps (10): the guaranteed rate cannot exceed the most the circuit may use",
            "ShapedDevices.csv:6:33: Upload Max Mbps `x` is not a number of Mbps: expected digits with an optional decimal point, as 25 or 2.5",
            "ShapedDevices.csv:7:38: this row has 14 cells and the header 13: a cell with a `,` in it is quoted (\"a, b\")",
            "ShapedDevices.csv:8:12: device `d7` has no address: nothing of it could be shaped (IPv4 and IPv6 are both empty)",
            "ShapedDevices.csv:9:10: circuit `1` has Parent Node `(empty)` on line 2 and `AP` here: the rows of one circuit give it once",
            "ShapedDevices.csv:9:31: circuit `1` has Download Max Mbps `100Mbit` on line 2 and `90Mbit` here: the rows of one circuit give it once",
        ];
        assert_eq!(errors, want);
    }

    #[test]
    fn a_bad_header_or_an_open_quote_is_reported() {
        let e =
            read_shaped_devices("s.csv", "Circuit ID,Device ID\n1,2\n").expect_err("no columns");
        assert_eq!(e.len(), 1);
        assert!(
            e[0].to_string()
                .starts_with("s.csv:1:1: the header lacks the columns Circuit Name, Device Name,"),
            "{}",
            e[0]
        );
        let e = read_shaped_devices("s.csv", "").expect_err("empty");
        assert!(
            e[0].to_string().starts_with("s.csv:1:1: no header row"),
            "{}",
            e[0]
        );
        let e = read(",\"open,d,D,,,198.18.0.1,,1,1,1,1,\n").expect_err("open quote");
        assert_eq!(e[0].to_string(), "ShapedDevices.csv:2:2: this quote is never closed: a quoted cell ends with a `\"` (a quote inside one is written `\"\"`)");
        let e = read("1,\"A\"x,d,D,,,198.18.0.1,,1,1,1,1,\n").expect_err("text after quote");
        assert_eq!(e[0].to_string(), "ShapedDevices.csv:2:6: text after a quoted cell: a cell that starts with `\"` ends at the closing quote, before the next `,`");
        let e = read("1,A,d,D,,,198.18.0.1,,0,1,1,1,\n").expect_err("zero");
        assert_eq!(e[0].to_string(), "ShapedDevices.csv:2:23: Download Min Mbps is 0: a circuit with no rate would have everything it sends dropped");
    }

    #[test]
    fn a_byte_order_mark_is_not_part_of_the_first_column() {
        let got = read_shaped_devices(
            "s.csv",
            &format!("\u{feff}{HEADER}1,A,d,D,,,198.18.0.1,,1,1,2,2,\n"),
        )
        .expect("reads");
        assert_eq!(got.circuits[0].id, "1");
    }

    #[test]
    fn quotes_inside_quoted_cells_are_kept() {
        let got = read("1,\"The \"\"Big\"\" One\",d,D,,,198.18.0.1,,1,1,2,2,\"say \"\"hi\"\"\"\n")
            .expect("reads");
        assert_eq!(got.circuits[0].name, "The \"Big\" One");
        assert_eq!(got.circuits[0].devices[0].comment, "say \"hi\"");
    }

    #[test]
    fn ten_thousand_generated_circuits_read_back() {
        let mut body = String::new();
        for i in 0..10_000u32 {
            body.push_str(&format!(
                "c{i},Circuit {i},d{i},Device {i},AP_{},,198.{}.{}.{},2001:db8:{:x}::/64,{}.5,1,{},{},\n",
                i % 50,
                18 + i / 65_536,
                (i / 256) % 256,
                i % 256,
                i,
                1 + i % 10,
                20 + i % 100,
                5 + i % 20,
            ));
        }
        let got = read(&body).expect("reads");
        assert_eq!(got.circuits.len(), 10_000);
        assert_eq!(got.circuits[9_999].id, "c9999");
        assert_eq!(
            got.circuits[9_999].download.min,
            Rate::from_bits_per_sec(10_500_000)
        );
        assert_eq!(got.circuits[9_999].line, 10_001);
    }
}
