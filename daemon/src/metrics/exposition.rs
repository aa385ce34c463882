//! The Prometheus text exposition format, version 0.0.4.
//!
//! An [`Exposition`] appends to a caller-owned `String`. Each metric family
//! gets its `# HELP` and `# TYPE` lines once, before its first sample, however
//! many times the family is written to.

use std::fmt::Write as _;

/// The `Content-Type` of a text exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// The `# TYPE` of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// A value that only goes up (and resets to zero on restart).
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// Cumulative buckets with `_bucket`, `_sum` and `_count` series.
    Histogram,
    /// A value of no declared type.
    Untyped,
}

impl MetricKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
            Self::Untyped => "untyped",
        }
    }
}

/// A sample value: integers print exactly, floats in Prometheus spelling
/// (`NaN`, `+Inf`, `-Inf`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// An exact unsigned integer.
    Int(u64),
    /// A floating-point value.
    Float(f64),
}

impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Self::Int(v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Self::Float(v)
    }
}

/// Writes metric families into a `String` in the text format.
#[derive(Debug)]
pub struct Exposition<'a> {
    out: &'a mut String,
    /// Families whose `# HELP`/`# TYPE` lines are already written.
    families: Vec<String>,
}

impl<'a> Exposition<'a> {
    /// Appends to `out`; nothing already in `out` is looked at.
    pub fn new(out: &'a mut String) -> Self {
        Self {
            out,
            families: Vec::new(),
        }
    }

    /// Writes the `# HELP` and `# TYPE` lines of family `name`, unless this
    /// exposition has written them already.
    pub fn header(&mut self, name: &str, help: &str, kind: MetricKind) {
        if self.families.iter().any(|f| f == name) {
            return;
        }
        self.families.push(name.to_owned());
        self.out.push_str("# HELP ");
        self.out.push_str(name);
        self.out.push(' ');
        push_escaped(self.out, help, false);
        self.out.push_str("\n# TYPE ");
        self.out.push_str(name);
        self.out.push(' ');
        self.out.push_str(kind.as_str());
        self.out.push('\n');
    }

    /// Writes one sample line `name{labels} value`. Label values are escaped;
    /// label names and `name` must already be valid metric identifiers.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Into<Value>) {
        self.out.push_str(name);
        push_labels(self.out, labels, None);
        self.out.push(' ');
        push_value(self.out, value.into());
        self.out.push('\n');
    }

    /// Writes a counter sample with its family header.
    pub fn counter(&mut self, name: &str, help: &str, labels: &[(&str, &str)], value: u64) {
        self.header(name, help, MetricKind::Counter);
        self.sample(name, labels, value);
    }

    /// Writes a gauge sample with its family header.
    pub fn gauge(
        &mut self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
        value: impl Into<Value>,
    ) {
        self.header(name, help, MetricKind::Gauge);
        self.sample(name, labels, value);
    }

    /// Writes the `_bucket` (cumulative, ending in `le="+Inf"`), `_sum` and
    /// `_count` series of one histogram, with its family header.
    pub fn histogram(
        &mut self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
        hist: &super::Histogram,
    ) {
        self.header(name, help, MetricKind::Histogram);
        let snap = hist.snapshot();
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0u64;
        let mut le = String::new();
        for (bound, count) in snap.bounds.iter().zip(&snap.counts) {
            cumulative += count;
            le.clear();
            push_value(&mut le, Value::Float(*bound));
            self.bucket_line(&bucket, labels, &le, cumulative);
        }
        self.bucket_line(&bucket, labels, "+Inf", snap.count);
        self.sample(&format!("{name}_sum"), labels, snap.sum);
        self.sample(&format!("{name}_count"), labels, snap.count);
    }

    fn bucket_line(&mut self, bucket: &str, labels: &[(&str, &str)], le: &str, count: u64) {
        self.out.push_str(bucket);
        push_labels(self.out, labels, Some(("le", le)));
        self.out.push(' ');
        push_value(self.out, Value::Int(count));
        self.out.push('\n');
    }
}

/// Appends `{a="x",b="y"}` (nothing when there are no labels), with `extra`
/// last.
fn push_labels(out: &mut String, labels: &[(&str, &str)], extra: Option<(&str, &str)>) {
    if labels.is_empty() && extra.is_none() {
        return;
    }
    out.push('{');
    for (i, (name, value)) in labels.iter().chain(extra.as_ref()).enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(name);
        out.push_str("=\"");
        push_escaped(out, value, true);
        out.push('"');
    }
    out.push('}');
}

/// Escapes `\` and newline, and `"` too inside label values.
fn push_escaped(out: &mut String, text: &str, quote: bool) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

fn push_value(out: &mut String, value: Value) {
    match value {
        Value::Int(v) => {
            // Writing into a String cannot fail.
            let _ = write!(out, "{v}");
        }
        Value::Float(v) if v.is_nan() => out.push_str("NaN"),
        Value::Float(v) if v == f64::INFINITY => out.push_str("+Inf"),
        Value::Float(v) if v == f64::NEG_INFINITY => out.push_str("-Inf"),
        Value::Float(v) => {
            let _ = write!(out, "{v}");
        }
    }
}
