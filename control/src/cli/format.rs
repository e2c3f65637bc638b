//! How `xpptp` writes numbers, durations, MPPE modes and tables for people. JSON output
//! never goes through here: it keeps raw numbers.

use xpptp_proto::control_api::MppeInfo;
use xpptp_proto::crypto::mppe::MppeMode;
use xpptp_proto::crypto::mppe_keys::MppeStrength;

/// Octets in binary units: `512 B`, `1.5 KiB`, `3.0 GiB`.
pub fn bytes(n: u64) -> String {
    scaled(
        n,
        1024,
        &["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"],
        " ",
    )
}

/// A count in decimal units: `999`, `1.2k`, `3.4M`.
pub fn count(n: u64) -> String {
    scaled(n, 1000, &["", "k", "M", "G", "T", "P", "E"], "")
}

/// A rate in bits per second, decimal: `0 bit/s`, `12.5 Mbit/s`.
pub fn bits_per_sec(rate: f64) -> String {
    let units = ["bit/s", "kbit/s", "Mbit/s", "Gbit/s", "Tbit/s"];
    let (value, unit) = scale_f64(rate, 1000.0, &units);
    if unit == 0 {
        format!("{value:.0} {}", units[0])
    } else {
        format!("{value:.1} {}", units.get(unit).copied().unwrap_or("?"))
    }
}

/// A rate of packets per second, decimal: `17`, `1.2k`.
pub fn per_sec(rate: f64) -> String {
    let units = ["", "k", "M", "G", "T"];
    let (value, unit) = scale_f64(rate, 1000.0, &units);
    if unit == 0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}{}", units.get(unit).copied().unwrap_or("?"))
    }
}

fn scale_f64(mut value: f64, step: f64, units: &[&str]) -> (f64, usize) {
    if !value.is_finite() || value < 0.0 {
        value = 0.0;
    }
    let mut unit = 0;
    while value >= step && unit + 1 < units.len() {
        value /= step;
        unit += 1;
    }
    (value, unit)
}

fn scaled(n: u64, step: u64, units: &[&str], space: &str) -> String {
    let first = units.first().copied().unwrap_or("");
    if n < step {
        return format!("{n}{space}{first}");
    }
    // f64 loses precision past 2^53, invisible at one decimal.
    let (value, unit) = scale_f64(n as f64, step as f64, units);
    format!(
        "{value:.1}{space}{}",
        units.get(unit).copied().unwrap_or("?")
    )
}

/// A duration in seconds, as operators read uptimes: `42s`, `3m05s`, `2h03m04s`,
/// `1d02h03m`.
pub fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d{h:02}h{m:02}m")
    } else if h > 0 {
        format!("{h}h{m:02}m{s:02}s")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

/// One direction's MPPE: `128-stateless`, `40-stateful`, `56-stateful-linux`, `none`.
pub fn mppe_one(info: Option<&MppeInfo>) -> String {
    let Some(info) = info else {
        return "none".into();
    };
    let bits = mppe_bits(info.strength);
    let mode = match info.mode {
        MppeMode::Stateless => "stateless",
        MppeMode::Stateful => "stateful",
        MppeMode::StatefulLinux => "stateful-linux",
    };
    format!("{bits}-{mode}")
}

/// The key length in bits.
pub fn mppe_bits(strength: MppeStrength) -> u16 {
    match strength {
        MppeStrength::Bits40 => 40,
        MppeStrength::Bits56 => 56,
        MppeStrength::Bits128 => 128,
    }
}

/// Both directions: one label when they agree, `tx:LABEL/rx:LABEL` when they differ.
pub fn mppe(transmit: Option<&MppeInfo>, receive: Option<&MppeInfo>) -> String {
    let (tx, rx) = (mppe_one(transmit), mppe_one(receive));
    if tx == rx {
        tx
    } else {
        format!("tx:{tx}/rx:{rx}")
    }
}

/// A protocol enum's name from its `Debug` form, words joined by `sep`:
/// `UnknownCall` → `unknown-call` (`-`) or `unknown_call` (`_`); `Unknown(14)` →
/// `unknown-14`. New reasons a newer datapath reports get a name without a change here.
pub fn reason_name(debug: &str, sep: char) -> String {
    if let Some(number) = debug
        .strip_prefix("Unknown(")
        .and_then(|r| r.strip_suffix(')'))
    {
        return format!("unknown{sep}{number}");
    }
    let mut name = String::with_capacity(debug.len() + 4);
    for (i, c) in debug.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                name.push(sep);
            }
            name.push(c.to_ascii_lowercase());
        } else {
            name.push(c);
        }
    }
    name
}

/// How a table is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableStyle {
    /// Write the header line.
    pub header: bool,
    /// Tab-separated, unpadded (for scripts) rather than aligned.
    pub tsv: bool,
}

/// Which way a column is aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Text.
    Left,
    /// Numbers.
    Right,
}

/// Writes `rows` under `header` as aligned columns two spaces apart (no borders, like
/// `ip` and accel-cmd), or tab-separated. Trailing spaces are never written.
pub fn table(header: &[&str], align: &[Align], rows: &[Vec<String>], style: TableStyle) -> String {
    let head: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    let lines: Vec<&Vec<String>> = style
        .header
        .then_some(&head)
        .into_iter()
        .chain(rows.iter())
        .collect();
    let mut out = String::new();
    if style.tsv {
        for line in lines {
            out.push_str(&line.join("\t"));
            out.push('\n');
        }
        return out;
    }
    let mut widths = vec![0usize; header.len()];
    for line in &lines {
        for (width, cell) in widths.iter_mut().zip(line.iter()) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for line in lines {
        let mut text = String::new();
        for (i, cell) in line.iter().enumerate() {
            let width = widths.get(i).copied().unwrap_or(0);
            if i > 0 {
                text.push_str("  ");
            }
            match align.get(i).copied().unwrap_or(Align::Left) {
                Align::Left => text.push_str(&format!("{cell:<width$}")),
                Align::Right => text.push_str(&format!("{cell:>width$}")),
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1024), "1.0 KiB");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 * 1024 * 1024 * 1024), "5.0 GiB");
        assert_eq!(bytes(u64::MAX), "16.0 EiB");
    }

    #[test]
    fn human_counts_and_rates() {
        assert_eq!(count(999), "999");
        assert_eq!(count(1200), "1.2k");
        assert_eq!(count(3_400_000), "3.4M");
        assert_eq!(per_sec(17.4), "17");
        assert_eq!(per_sec(1250.0), "1.2k");
        assert_eq!(bits_per_sec(0.0), "0 bit/s");
        assert_eq!(bits_per_sec(12_500_000.0), "12.5 Mbit/s");
        assert_eq!(bits_per_sec(f64::NAN), "0 bit/s");
    }

    #[test]
    fn durations() {
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(42), "42s");
        assert_eq!(duration(185), "3m05s");
        assert_eq!(duration(2 * 3600 + 3 * 60 + 4), "2h03m04s");
        assert_eq!(duration(86_400 + 2 * 3600 + 3 * 60 + 59), "1d02h03m");
    }

    #[test]
    fn mppe_labels() {
        let s128 = MppeInfo {
            strength: MppeStrength::Bits128,
            mode: MppeMode::Stateless,
        };
        let s40 = MppeInfo {
            strength: MppeStrength::Bits40,
            mode: MppeMode::Stateful,
        };
        assert_eq!(mppe(Some(&s128), Some(&s128)), "128-stateless");
        assert_eq!(mppe(Some(&s40), Some(&s40)), "40-stateful");
        assert_eq!(mppe(None, None), "none");
        assert_eq!(
            mppe(Some(&s128), Some(&s40)),
            "tx:128-stateless/rx:40-stateful"
        );
        assert_eq!(mppe(None, Some(&s40)), "tx:none/rx:40-stateful");
    }

    #[test]
    fn reason_names() {
        assert_eq!(reason_name("UnknownCall", '-'), "unknown-call");
        assert_eq!(reason_name("NoRoute", '_'), "no_route");
        assert_eq!(reason_name("Unknown(14)", '-'), "unknown-14");
    }

    #[test]
    fn tables_align_and_tsv() {
        let rows = vec![
            vec!["1".to_owned(), "alice".to_owned()],
            vec!["20".to_owned(), "b".to_owned()],
        ];
        let style = TableStyle {
            header: true,
            tsv: false,
        };
        let text = table(&["id", "user"], &[Align::Right, Align::Left], &rows, style);
        assert_eq!(text, "id  user\n 1  alice\n20  b\n");
        let tsv = TableStyle {
            header: false,
            tsv: true,
        };
        let text = table(&["id", "user"], &[Align::Right, Align::Left], &rows, tsv);
        assert_eq!(text, "1\talice\n20\tb\n");
    }
}
