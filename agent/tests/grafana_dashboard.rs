//! `assets/grafana/bootwave.json` queries only what the daemons expose.
//!
//! The data plane's exposition is rendered by the functions its metrics
//! endpoint calls (shard counters, pool gauges, HTTP counters); the
//! agent's is scraped from an in-process agent with `--metrics` that
//! pushed to a data plane. Every expression of the dashboard (panels and
//! variables) is read token by token: each metric it names must be a
//! series of one of the two expositions, each label it selects or groups
//! by must be a label of those series, `rate`/`increase` must be applied
//! to counters or histogram series, and every function must be one
//! PromQL has.
#![allow(clippy::unwrap_used)]

mod agent_support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use agent_support::*;
use bootwave_agent::server::{self, AgentConfig, Listen, Listener, ServeOptions};
use bootwave_dataplane::events::LeaseMirror;
use bootwave_dataplane::http::HttpStats;
use bootwave_dataplane::runtime::stats::{self, Counters, Published};
use bootwave_proto::v1;
use bootwave_protocol::config::Ipv4Net;
use bootwave_protocol::dhcp::PoolUsage;

const DASHBOARD: &str = include_str!("../../assets/grafana/bootwave.json");

/// Labels Prometheus adds to every scraped series.
const TARGET_LABELS: [&str; 2] = ["instance", "job"];

/// Functions and aggregations the dashboard may call.
const FUNCTIONS: [&str; 14] = [
    "rate",
    "irate",
    "increase",
    "histogram_quantile",
    "sum",
    "avg",
    "min",
    "max",
    "count",
    "topk",
    "bottomk",
    "clamp_min",
    "abs",
    "label_values",
];

/// Words of PromQL that are neither metrics nor functions.
const KEYWORDS: [&str; 5] = ["and", "or", "unless", "bool", "offset"];

/// Clauses followed by a list of label names.
const GROUPING: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// One exposition, as series names with their labels and family types.
#[derive(Debug, Default)]
struct Exposed {
    /// Sample names (histograms as `_bucket`, `_sum`, `_count`) and the
    /// label names seen on them.
    series: BTreeMap<String, BTreeSet<String>>,
    /// `# TYPE` of each family.
    kinds: BTreeMap<String, String>,
}

impl Exposed {
    fn parse(text: &str) -> Self {
        let mut exposed = Self::default();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                exposed.kinds.insert(name.to_owned(), kind.to_owned());
                if kind != "histogram" {
                    exposed.series.entry(name.to_owned()).or_default();
                }
                continue;
            }
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let end = line.find(['{', ' ']).unwrap();
            let labels = exposed.series.entry(line[..end].to_owned()).or_default();
            if let Some(set) = line[end..].strip_prefix('{') {
                let set = &set[..set.rfind('}').unwrap()];
                // Label values here hold no `=`, `,` or `"` of their own.
                for pair in set.split(',') {
                    labels.insert(pair.split_once('=').unwrap().0.to_owned());
                }
            }
        }
        exposed
    }

    fn merge(mut self, other: Self) -> Self {
        for (name, labels) in other.series {
            assert!(
                !self.series.contains_key(&name),
                "{name} is exposed by both daemons"
            );
            self.series.insert(name, labels);
        }
        self.kinds.extend(other.kinds);
        self
    }

    /// The `# TYPE` of the family `series` belongs to.
    fn kind(&self, series: &str) -> &str {
        if let Some(kind) = self.kinds.get(series) {
            return kind;
        }
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(family) = series.strip_suffix(suffix)
                && let Some(kind) = self.kinds.get(family)
            {
                return kind;
            }
        }
        "untyped"
    }
}

/// A metric named by an expression.
#[derive(Debug)]
struct MetricUse {
    name: String,
    /// Label names of its selector (`{state="free"}`).
    matchers: Vec<String>,
    /// The function whose argument it is directly, if any.
    inside: Option<String>,
}

/// What one PromQL expression refers to.
#[derive(Debug, Default)]
struct Refs {
    metrics: Vec<MetricUse>,
    functions: Vec<String>,
    /// Label names of `by (…)`, `without (…)`, `on (…)`, ….
    grouping: Vec<String>,
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// Reads an expression: strings, range selectors and Grafana variables
/// are skipped; identifiers are functions (before `(`), clauses, keywords
/// or metrics.
fn refs(expr: &str) -> Refs {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = Refs::default();
    // Open parentheses: the function each one belongs to.
    let mut stack: Vec<Option<String>> = Vec::new();
    let mut pending: Option<String> = None;
    let mut i = 0;
    let ident = |i: &mut usize| -> String {
        let start = *i;
        while *i < chars.len() && is_ident(chars[*i]) {
            *i += 1;
        }
        chars[start..*i].iter().collect()
    };
    let skip_ws = |i: &mut usize| {
        while *i < chars.len() && chars[*i].is_whitespace() {
            *i += 1;
        }
    };
    let skip_string = |i: &mut usize| {
        let quote = chars[*i];
        *i += 1;
        while *i < chars.len() && chars[*i] != quote {
            if chars[*i] == '\\' {
                *i += 1;
            }
            *i += 1;
        }
        assert!(*i < chars.len(), "unterminated string in {expr}");
        *i += 1;
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '"' | '\'' | '`' => skip_string(&mut i),
            '$' => {
                i += 1;
                if chars.get(i) == Some(&'{') {
                    while chars[i] != '}' {
                        i += 1;
                    }
                    i += 1;
                } else {
                    ident(&mut i);
                }
            }
            '[' => {
                while chars[i] != ']' {
                    i += 1;
                }
                i += 1;
            }
            '{' => {
                let metric = out
                    .metrics
                    .last_mut()
                    .unwrap_or_else(|| panic!("a selector without a metric name in {expr}"));
                i += 1;
                loop {
                    skip_ws(&mut i);
                    match chars[i] {
                        '}' => break,
                        ',' => i += 1,
                        '"' | '\'' | '`' => skip_string(&mut i),
                        '=' | '!' | '~' => i += 1,
                        c if is_ident_start(c) => metric.matchers.push(ident(&mut i)),
                        c => panic!("unexpected {c:?} in a selector of {expr}"),
                    }
                }
                i += 1;
            }
            '(' => {
                stack.push(pending.take());
                i += 1;
            }
            ')' => {
                stack
                    .pop()
                    .unwrap_or_else(|| panic!("unbalanced ) in {expr}"));
                i += 1;
            }
            c if c.is_ascii_digit() || c == '.' => {
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            c if is_ident_start(c) => {
                let word = ident(&mut i);
                let mut next = i;
                skip_ws(&mut next);
                let call = chars.get(next) == Some(&'(');
                if GROUPING.contains(&word.as_str()) {
                    if call {
                        i = next + 1;
                        loop {
                            skip_ws(&mut i);
                            match chars[i] {
                                ')' => break,
                                ',' => i += 1,
                                c if is_ident_start(c) => out.grouping.push(ident(&mut i)),
                                c => panic!("unexpected {c:?} in {word} (…) of {expr}"),
                            }
                        }
                        i += 1;
                    }
                } else if call {
                    out.functions.push(word.clone());
                    pending = Some(word);
                } else if FUNCTIONS.contains(&word.as_str()) || KEYWORDS.contains(&word.as_str()) {
                    // An aggregation before its `by (…)`, or an operator.
                } else {
                    let inside = stack.last().cloned().flatten();
                    out.metrics.push(MetricUse {
                        name: word,
                        matchers: Vec::new(),
                        inside,
                    });
                }
            }
            _ => i += 1,
        }
    }
    assert!(stack.is_empty(), "unbalanced ( in {expr}");
    out
}

/// Every `expr` of the dashboard's panels (rows included), with its panel
/// title.
fn panel_exprs(dashboard: &serde_json::Value) -> Vec<(String, String)> {
    fn walk(panels: &serde_json::Value, out: &mut Vec<(String, String)>) {
        for panel in panels.as_array().into_iter().flatten() {
            let title = panel["title"].as_str().unwrap_or("").to_owned();
            for target in panel["targets"].as_array().into_iter().flatten() {
                let expr = target["expr"].as_str().unwrap();
                out.push((title.clone(), expr.to_owned()));
            }
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// The problems of one expression against `exposed`; empty when none.
fn check(expr: &str, exposed: &Exposed) -> Vec<String> {
    let refs = refs(expr);
    let mut problems = Vec::new();
    if refs.metrics.is_empty() {
        problems.push("names no metric".to_owned());
    }
    for function in &refs.functions {
        if !FUNCTIONS.contains(&function.as_str()) {
            problems.push(format!("unknown function {function}"));
        }
    }
    let mut labels: BTreeSet<&str> = TARGET_LABELS.into_iter().collect();
    for metric in &refs.metrics {
        let Some(have) = exposed.series.get(&metric.name) else {
            problems.push(format!("{} is not exposed", metric.name));
            continue;
        };
        labels.extend(have.iter().map(String::as_str));
        for label in &metric.matchers {
            if !have.contains(label) && !TARGET_LABELS.contains(&label.as_str()) {
                problems.push(format!("{} has no label {label}", metric.name));
            }
        }
        let kind = exposed.kind(&metric.name);
        let counting = matches!(kind, "counter" | "histogram");
        if matches!(
            metric.inside.as_deref(),
            Some("rate" | "irate" | "increase")
        ) && !counting
        {
            problems.push(format!("rate of the {kind} {}", metric.name));
        }
    }
    for label in &refs.grouping {
        if !labels.contains(label.as_str()) {
            problems.push(format!("grouping by {label}, which no series here has"));
        }
    }
    problems
}

/// `label_values(METRIC, LABEL)` of a query variable.
fn check_variable(query: &str, exposed: &Exposed) -> Vec<String> {
    let inner = query
        .strip_prefix("label_values(")
        .and_then(|q| q.strip_suffix(')'))
        .unwrap_or_else(|| panic!("variable query {query} is not label_values(METRIC, LABEL)"));
    let (metric, label) = inner.split_once(',').unwrap();
    let label = label.trim();
    let mut problems = check(metric.trim(), exposed);
    let has = exposed
        .series
        .get(metric.trim())
        .is_some_and(|l| l.contains(label));
    if !has && !TARGET_LABELS.contains(&label) {
        problems.push(format!("{metric} has no label {label}"));
    }
    problems
}

/// Every problem of the dashboard against `exposed`, one line each.
fn dashboard_problems(dashboard: &serde_json::Value, exposed: &Exposed) -> Vec<String> {
    let mut problems = Vec::new();
    for (title, expr) in panel_exprs(dashboard) {
        for p in check(&expr, exposed) {
            problems.push(format!("panel {title:?}: {p}: {expr}"));
        }
    }
    for var in dashboard["templating"]["list"].as_array().unwrap() {
        if var["type"] == "query" {
            let query = var["query"]["query"]
                .as_str()
                .or_else(|| var["query"].as_str())
                .unwrap();
            for p in check_variable(query, exposed) {
                problems.push(format!("variable {}: {p}: {query}", var["name"]));
            }
        }
    }
    problems
}

/// What the data plane's `/metrics` serves: two shards, one pool, HTTP.
fn dataplane_exposition() -> String {
    let shards: Vec<Arc<Published>> = (0..2).map(|_| Arc::new(Published::default())).collect();
    let mut counters = Counters::default();
    counters.journal_commit(2, Duration::from_micros(300));
    shards[0].store(&counters);
    let mirror = Arc::new(LeaseMirror::new(0, 1));
    mirror.set_pools(&[PoolUsage {
        network: Ipv4Net::new(Ipv4Addr::new(192, 168, 1, 0), 28).unwrap(),
        size: 4,
        bound: 1,
        offered: 1,
        quarantined: 0,
    }]);
    let mut text = String::new();
    stats::render(&shards, &mut text);
    stats::render_pools(&[mirror], &mut text);
    HttpStats::default().render(&mut text);
    text
}

/// `GET /metrics` over a plain socket; the body.
fn scrape(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}

/// What the agent's `/metrics` serves after one change pushed to one
/// data plane (its own wave registry, no wave running).
async fn agent_exposition() -> String {
    let (dir, state, socket) = temp();
    let plane_socket = dir.path().join("dp.sock");
    let (_plane, _applied) = fake_dataplane(&plane_socket);
    let listener = Listener::bind(&Listen::Unix(socket.clone())).await.unwrap();
    let config = AgentConfig {
        state_dir: state,
        dataplanes: vec![format!("unix:{}", plane_socket.display())],
        token: None,
        resync_interval: Duration::from_millis(50),
    };
    let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
    let options = ServeOptions {
        metrics: Some("127.0.0.1:0".parse().unwrap()),
        metrics_bound: Some(bound_tx),
        ..ServeOptions::default()
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(server::serve_with(config, options, listener, async {
        let _ = stop_rx.await;
    }));
    let agent = InProcess {
        endpoint: format!("unix:{}", socket.display()),
        stop: Some(stop_tx),
        task,
    };
    let addr = bound_rx.await.unwrap();
    let mut client = client(&agent.endpoint).await;
    client
        .put_subnet(v1::PutSubnetRequest {
            subnet: Some(subnet()),
        })
        .await
        .unwrap();
    let text = tokio::task::spawn_blocking(move || scrape(addr))
        .await
        .unwrap();
    agent.stop().await;
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_names_exposed_series() {
    let dashboard: serde_json::Value = serde_json::from_str(DASHBOARD).unwrap();
    assert_eq!(dashboard["templating"]["list"][0]["type"], "datasource");
    assert_eq!(dashboard["templating"]["list"][0]["query"], "prometheus");
    let exposed =
        Exposed::parse(&dataplane_exposition()).merge(Exposed::parse(&agent_exposition().await));
    // The renders above are the real ones: a family the dashboard shows
    // is there with its labels.
    assert!(exposed.series["bootwave_dhcp_pool_addresses"].contains("state"));
    assert!(exposed.series["bootwave_agent_wave_hosts"].contains("stage"));
    assert!(exposed.series["bootwave_agent_rpc_total"].contains("code"));

    let exprs = panel_exprs(&dashboard);
    assert!(exprs.len() >= 20, "only {} queries", exprs.len());
    let problems = dashboard_problems(&dashboard, &exposed);
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // Every family of both daemons is on some panel, except those that
    // only describe the exposition itself.
    let queried: BTreeSet<String> = exprs
        .iter()
        .flat_map(|(_, e)| refs(e).metrics.into_iter().map(|m| m.name))
        .collect();
    let unshown: Vec<&String> = exposed
        .kinds
        .keys()
        .filter(|family| {
            !queried.contains(*family)
                && !["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|s| queried.contains(&format!("{family}{s}")))
        })
        .collect();
    assert!(unshown.is_empty(), "families on no panel: {unshown:?}");
}

#[test]
fn wrong_names_labels_and_functions_are_reported() {
    let text = "\
# TYPE bootwave_x_total counter
bootwave_x_total{shard=\"0\",reason=\"a\"} 1
# TYPE bootwave_g gauge
bootwave_g{state=\"free\"} 2
# TYPE bootwave_h_seconds histogram
bootwave_h_seconds_bucket{le=\"+Inf\"} 0
bootwave_h_seconds_sum 0
bootwave_h_seconds_count 0
";
    let exposed = Exposed::parse(text);
    let ok = [
        "sum by (reason) (rate(bootwave_x_total{instance=~\"$dataplane\"}[$__rate_interval]))",
        "histogram_quantile(0.99, sum by (le) (rate(bootwave_h_seconds_bucket[5m])))",
        "1 - sum(bootwave_g{state=\"free\"}) / sum(bootwave_g)",
        "sum(rate(bootwave_h_seconds_sum[5m])) / sum(rate(bootwave_h_seconds_count[5m]))",
    ];
    for expr in ok {
        assert_eq!(check(expr, &exposed), Vec::<String>::new(), "{expr}");
    }
    let bad = [
        (
            "rate(bootwave_y_total[5m])",
            "bootwave_y_total is not exposed",
        ),
        (
            "rate(bootwave_h_seconds[5m])",
            "bootwave_h_seconds is not exposed",
        ),
        ("bootwave_g{stat=\"free\"}", "bootwave_g has no label stat"),
        ("sum by (code) (bootwave_g)", "grouping by code"),
        ("rate(bootwave_g[5m])", "rate of the gauge bootwave_g"),
        ("rat(bootwave_x_total[5m])", "unknown function rat"),
        ("sum(rate($metric[5m]))", "names no metric"),
    ];
    for (expr, want) in bad {
        let problems = check(expr, &exposed);
        assert!(
            problems.iter().any(|p| p.starts_with(want)),
            "{expr}: {problems:?}"
        );
    }
    assert_eq!(
        check_variable("label_values(bootwave_g, instance)", &exposed),
        Vec::<String>::new()
    );
    assert!(!check_variable("label_values(bootwave_g, subnet)", &exposed).is_empty());
}
