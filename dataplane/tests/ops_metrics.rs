//! Metrics: exact exposition text, and the scrape endpoint over loopback.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bootwave_daemon::metrics::{
    self, CounterId, CounterVec, Exposition, Histogram, MetricKind, Render,
};

#[derive(Debug, Clone, Copy)]
enum Drop_ {
    Malformed,
    NoLease,
}

impl CounterId for Drop_ {
    const ALL: &'static [Self] = &[Self::Malformed, Self::NoLease];
    fn index(self) -> usize {
        self as usize
    }
    fn label(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::NoLease => "no_lease",
        }
    }
}

fn render(f: impl FnOnce(&mut Exposition<'_>)) -> String {
    let mut out = String::new();
    f(&mut Exposition::new(&mut out));
    out
}

#[test]
fn counters_and_gauges_write_header_once_per_family() {
    let text = render(|exp| {
        exp.counter(
            "dhcp_rx_total",
            "Datagrams received.",
            &[("shard", "0")],
            12,
        );
        exp.counter("dhcp_rx_total", "Datagrams received.", &[("shard", "1")], 7);
        exp.gauge("leases", "Active leases.", &[], 3u64);
        exp.gauge("load", "A ratio.", &[], 0.25);
    });
    let want = "\
# HELP dhcp_rx_total Datagrams received.
# TYPE dhcp_rx_total counter
dhcp_rx_total{shard=\"0\"} 12
dhcp_rx_total{shard=\"1\"} 7
# HELP leases Active leases.
# TYPE leases gauge
leases 3
# HELP load A ratio.
# TYPE load gauge
load 0.25
";
    assert_eq!(text, want);
}

#[test]
fn label_values_and_help_are_escaped() {
    let text = render(|exp| {
        exp.header(
            "files",
            "Path \\ with\nnewline \"quoted\".",
            MetricKind::Untyped,
        );
        exp.sample(
            "files",
            &[("path", "C:\\boot\n\"x\""), ("kind", "efi")],
            1u64,
        );
    });
    let want = "\
# HELP files Path \\\\ with\\nnewline \"quoted\".
# TYPE files untyped
files{path=\"C:\\\\boot\\n\\\"x\\\"\",kind=\"efi\"} 1
";
    assert_eq!(text, want);
}

#[test]
fn special_float_values() {
    let text = render(|exp| {
        exp.sample("a", &[], f64::NAN);
        exp.sample("b", &[], f64::INFINITY);
        exp.sample("c", &[], f64::NEG_INFINITY);
        exp.sample("d", &[], -1.5);
        exp.sample("e", &[], u64::MAX);
    });
    assert_eq!(
        text,
        "a NaN\nb +Inf\nc -Inf\nd -1.5\ne 18446744073709551615\n"
    );
}

#[test]
fn histogram_buckets_are_cumulative_with_inf_sum_and_count() {
    // Unsorted, duplicated and infinite bounds are normalised.
    let hist = Histogram::new(&[0.5, 0.1, 0.5, f64::INFINITY, 1.0]);
    assert_eq!(hist.bounds(), &[0.1, 0.5, 1.0]);
    for v in [0.05, 0.1, 0.3, 0.7, 2.0, 3.0, f64::NAN] {
        hist.observe(v);
    }
    let text = render(|exp| {
        exp.histogram(
            "reply_seconds",
            "Time to reply.",
            &[("proto", "dhcp")],
            &hist,
        )
    });
    let want = "\
# HELP reply_seconds Time to reply.
# TYPE reply_seconds histogram
reply_seconds_bucket{proto=\"dhcp\",le=\"0.1\"} 2
reply_seconds_bucket{proto=\"dhcp\",le=\"0.5\"} 3
reply_seconds_bucket{proto=\"dhcp\",le=\"1\"} 4
reply_seconds_bucket{proto=\"dhcp\",le=\"+Inf\"} 6
reply_seconds_sum{proto=\"dhcp\"} 6.15
reply_seconds_count{proto=\"dhcp\"} 6
";
    assert_eq!(text, want);
}

#[test]
fn histogram_counts_every_observation_from_many_threads() {
    let hist = Arc::new(Histogram::new(&[1.0, 10.0]));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let hist = Arc::clone(&hist);
            std::thread::spawn(move || {
                for i in 0..10_000u32 {
                    hist.observe(f64::from(i % 20));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let snap = hist.snapshot();
    assert_eq!(snap.count, 40_000);
    // Per thread: values 0..20 repeated 500 times; 0,1 ≤ 1; 2..=10 ≤ 10.
    assert_eq!(snap.counts, vec![4 * 500 * 2, 4 * 500 * 9]);
    assert_eq!(snap.sum, 4.0 * 500.0 * 190.0);
}

#[test]
fn counter_vec_renders_one_family_with_a_sample_per_id() {
    let drops = CounterVec::<Drop_>::new();
    drops.inc(Drop_::NoLease);
    drops.add(Drop_::NoLease, 4);
    drops.inc(Drop_::Malformed);
    assert_eq!(drops.get(Drop_::NoLease), 5);
    let text = render(|exp| {
        drops.render(
            exp,
            "dhcp_dropped_total",
            "Dropped.",
            &[("shard", "2")],
            "reason",
        )
    });
    let want = "\
# HELP dhcp_dropped_total Dropped.
# TYPE dhcp_dropped_total counter
dhcp_dropped_total{shard=\"2\",reason=\"malformed\"} 1
dhcp_dropped_total{shard=\"2\",reason=\"no_lease\"} 5
";
    assert_eq!(text, want);
}

// ---- the HTTP endpoint ----

fn start(scrapes: Arc<AtomicU64>) -> metrics::MetricsServer {
    let render: Render = Arc::new(move |out: &mut String| {
        let n = scrapes.fetch_add(1, Ordering::Relaxed) + 1;
        Exposition::new(out).counter("scrapes_total", "Scrapes served.", &[], n);
    });
    metrics::serve("127.0.0.1:0".parse().unwrap(), render).unwrap()
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
}

/// Sends `request` and reads the whole response until the server closes.
fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = connect(addr);
    stream.write_all(request).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn serves_metrics_index_and_errors() {
    let server = start(Arc::new(AtomicU64::new(0)));
    let addr = server.local_addr();
    assert_ne!(addr.port(), 0);

    let ok = exchange(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    let body =
        "# HELP scrapes_total Scrapes served.\n# TYPE scrapes_total counter\nscrapes_total 1\n";
    assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
    assert!(
        ok.contains("\r\nContent-Type: text/plain; version=0.0.4\r\n"),
        "{ok}"
    );
    assert!(
        ok.contains(&format!("\r\nContent-Length: {}\r\n", body.len())),
        "{ok}"
    );
    assert!(ok.ends_with(&format!("\r\n\r\n{body}")), "{ok}");

    // Each scrape renders afresh.
    let again = exchange(addr, b"GET /metrics HTTP/1.0\r\n\r\n");
    assert!(again.ends_with("scrapes_total 2\n"), "{again}");

    let index = exchange(addr, b"GET / HTTP/1.1\r\n\r\n");
    assert!(index.starts_with("HTTP/1.1 200 OK\r\n"), "{index}");
    assert!(index.contains("href=\"/metrics\""), "{index}");

    let missing = exchange(addr, b"GET /favicon.ico HTTP/1.1\r\n\r\n");
    assert!(missing.starts_with("HTTP/1.1 404 "), "{missing}");

    let garbage = exchange(
        addr,
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
    );
    assert!(garbage.starts_with("HTTP/1.1 400 "), "{garbage}");

    let post = exchange(addr, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
}

#[test]
fn oversized_request_is_cut_off_and_server_keeps_serving() {
    let server = start(Arc::new(AtomicU64::new(0)));
    let addr = server.local_addr();
    let mut request = b"GET /metrics HTTP/1.1\r\nX-Filler: ".to_vec();
    request.resize(20 * 1024, b'a');
    let mut stream = connect(addr);
    stream.write_all(&request).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 431 "), "{response}");

    let ok = exchange(addr, b"GET /metrics HTTP/1.1\r\n\r\n");
    assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
}

#[test]
fn slow_client_is_dropped_after_the_request_deadline() {
    let server = start(Arc::new(AtomicU64::new(0)));
    let addr = server.local_addr();
    let started = Instant::now();
    let mut slow = connect(addr);
    slow.write_all(b"GET /metr").unwrap();
    let mut rest = Vec::new();
    // The server gives up on the incomplete head and closes without a reply.
    let read = slow.read_to_end(&mut rest);
    assert!(read.is_ok(), "{read:?}");
    assert!(rest.is_empty(), "{rest:?}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1500),
        "closed after {waited:?}"
    );
    assert!(waited < Duration::from_secs(5), "closed after {waited:?}");
    let ok = exchange(addr, b"GET /metrics HTTP/1.1\r\n\r\n");
    assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
}

#[test]
fn render_panic_answers_500() {
    let render: Render = Arc::new(|_: &mut String| panic!("render broke"));
    let server = metrics::serve("127.0.0.1:0".parse().unwrap(), render).unwrap();
    let response = exchange(server.local_addr(), b"GET /metrics HTTP/1.1\r\n\r\n");
    assert!(response.starts_with("HTTP/1.1 500 "), "{response}");
}

#[test]
fn drop_stops_the_server_and_frees_the_port() {
    let server = start(Arc::new(AtomicU64::new(0)));
    let addr = server.local_addr();
    drop(server);
    // The listener is closed once drop returns: nothing accepts any more.
    let refused = TcpStream::connect_timeout(&addr, Duration::from_secs(2));
    assert!(refused.is_err(), "still accepting on {addr}");
    // And the address can be bound again.
    let again = metrics::serve(addr, Arc::new(|_: &mut String| {})).unwrap();
    assert_eq!(again.local_addr(), addr);
}

#[test]
fn bind_error_names_the_address() {
    let first = start(Arc::new(AtomicU64::new(0)));
    let err = metrics::serve(first.local_addr(), Arc::new(|_: &mut String| {})).unwrap_err();
    assert!(matches!(err, metrics::MetricsError::Bind { addr, .. } if addr == first.local_addr()));
}
