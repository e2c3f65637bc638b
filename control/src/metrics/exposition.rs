//! The Prometheus text exposition format, version 0.0.4, written by hand.
//!
//! Why by hand: every figure is a snapshot gathered when a scrape arrives (the daemon's
//! counters and the datapath's reply to one request), so there is nothing to register and
//! keep between scrapes: a registry would only copy the numbers once more. The
//! `prometheus-client` crate, the maintained one, emits OpenMetrics text rather than this
//! format, and the format is small: `# HELP` and `# TYPE` lines, then samples
//! `name{label="value",...} number`, one family's samples together.
//!
//! [`Exposition::family`] writes a family's HELP and TYPE and returns a [`Family`] whose
//! samples follow them, so a family's lines cannot be interleaved with another's. Names
//! are ours (constants); label values and help texts are escaped as the format requires.

use std::fmt::Write as _;

/// A family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    /// Only goes up (restarts at zero when the process does); named `..._total`.
    Counter,
    /// Goes up and down.
    Gauge,
}

impl MetricType {
    fn name(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
        }
    }
}

/// A sample's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// A count or a gauge that is a whole number.
    Int(u64),
    /// A real number (seconds since the epoch, ...); not-a-number and infinities are
    /// written as the format spells them.
    Float(f64),
}

impl From<u64> for Value {
    fn from(v: u64) -> Value {
        Value::Int(v)
    }
}

impl From<u32> for Value {
    fn from(v: u32) -> Value {
        Value::Int(u64::from(v))
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Int(u64::from(v))
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Float(v)
    }
}

/// A text exposition being written.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// An empty exposition.
    pub fn new() -> Exposition {
        Exposition::default()
    }

    /// Starts the family `name` (HELP and TYPE lines); its samples follow through the
    /// returned [`Family`]. `name` must be a valid metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`):
    /// ours are constants.
    pub fn family(&mut self, name: &'static str, kind: MetricType, help: &str) -> Family<'_> {
        self.out.push_str("# HELP ");
        self.out.push_str(name);
        self.out.push(' ');
        escape_help(help, &mut self.out);
        self.out.push('\n');
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.name());
        Family { out: self, name }
    }

    /// The text, every line ending in a newline.
    pub fn finish(self) -> String {
        self.out
    }
}

/// One family's samples (see [`Exposition::family`]).
#[derive(Debug)]
pub struct Family<'a> {
    out: &'a mut Exposition,
    name: &'static str,
}

impl Family<'_> {
    /// Writes one sample. Label names must be valid (`[a-zA-Z_][a-zA-Z0-9_]*`: ours are
    /// constants); values are escaped.
    pub fn sample(&mut self, labels: &[(&str, &str)], value: impl Into<Value>) -> &mut Self {
        let out = &mut self.out.out;
        out.push_str(self.name);
        if !labels.is_empty() {
            out.push('{');
            for (n, (name, value)) in labels.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                out.push_str(name);
                out.push_str("=\"");
                escape_label_value(value, out);
                out.push('"');
            }
            out.push('}');
        }
        out.push(' ');
        match value.into() {
            Value::Int(v) => {
                let _ = write!(out, "{v}");
            }
            Value::Float(v) if v.is_nan() => out.push_str("NaN"),
            Value::Float(v) if v.is_infinite() => {
                out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" })
            }
            Value::Float(v) => {
                let _ = write!(out, "{v}");
            }
        }
        out.push('\n');
        self
    }
}

/// A label value: backslash, double quote and line feed escaped.
fn escape_label_value(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// A HELP text: backslash and line feed escaped (quotes are not, in this format).
fn escape_help(help: &str, out: &mut String) {
    for c in help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_family_with_labels_is_written_as_the_format_says() {
        let mut e = Exposition::new();
        e.family(
            "xpptp_refusals_total",
            MetricType::Counter,
            "Connections refused, by reason.",
        )
        .sample(&[("reason", "max_sessions")], 3u64)
        .sample(&[("reason", "source_rate")], 0u64);
        e.family("xpptp_datapath_up", MetricType::Gauge, "1 if it answered.")
            .sample(&[], true);
        e.family("xpptp_start_time_seconds", MetricType::Gauge, "Start.")
            .sample(&[], 1_700_000_000.5f64);
        assert_eq!(
            e.finish(),
            "# HELP xpptp_refusals_total Connections refused, by reason.\n\
             # TYPE xpptp_refusals_total counter\n\
             xpptp_refusals_total{reason=\"max_sessions\"} 3\n\
             xpptp_refusals_total{reason=\"source_rate\"} 0\n\
             # HELP xpptp_datapath_up 1 if it answered.\n\
             # TYPE xpptp_datapath_up gauge\n\
             xpptp_datapath_up 1\n\
             # HELP xpptp_start_time_seconds Start.\n\
             # TYPE xpptp_start_time_seconds gauge\n\
             xpptp_start_time_seconds 1700000000.5\n"
        );
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        let mut e = Exposition::new();
        e.family("x", MetricType::Gauge, "a \\ b\nc \"q\"")
            .sample(&[("v", "C:\\dir \"q\"\nnext"), ("w", "é")], 1u64);
        assert_eq!(
            e.finish(),
            "# HELP x a \\\\ b\\nc \"q\"\n\
             # TYPE x gauge\n\
             x{v=\"C:\\\\dir \\\"q\\\"\\nnext\",w=\"é\"} 1\n"
        );
    }

    #[test]
    fn special_floats_use_the_formats_spelling() {
        let mut e = Exposition::new();
        e.family("x", MetricType::Gauge, "h")
            .sample(&[("k", "nan")], f64::NAN)
            .sample(&[("k", "inf")], f64::INFINITY)
            .sample(&[("k", "-inf")], f64::NEG_INFINITY)
            .sample(&[("k", "max")], u64::MAX);
        let text = e.finish();
        assert!(text.contains("x{k=\"nan\"} NaN\n"), "{text}");
        assert!(text.contains("x{k=\"inf\"} +Inf\n"), "{text}");
        assert!(text.contains("x{k=\"-inf\"} -Inf\n"), "{text}");
        assert!(
            text.contains("x{k=\"max\"} 18446744073709551615\n"),
            "{text}"
        );
    }
}
