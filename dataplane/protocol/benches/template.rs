//! Cost of serving a per-host script: finding the host's profile script in
//! a snapshot of 10,000 hosts and rendering it (once per RRQ, never per
//! DATA packet), and a plain-file request that only pays the path check.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use bootwave_protocol::config::parse;
use bootwave_protocol::dhcp::Snapshot;
use bootwave_protocol::template::script_for;
use bootwave_protocol::tftp::ResolveRequest;

const HOSTS: u32 = 10_000;

/// A template the size of a real second-stage script, every variable used.
const TEMPLATE: &str = r#"#!ipxe
# {{hostname}} ({{name}}), profile {{profile}}, rack {{label:rack}}
:fetch
echo bootwave: {{mac}} / {{ip}} loading the rescue system from {{next-server}}
imgfree
kernel tftp://${next-server}/rescue/vmlinuz console=ttyS0 BOOTIF=01-{{mac-hyphen}} ip={{ip}} || goto retry
initrd tftp://${next-server}/rescue/initrd.img || goto retry
boot || goto retry
:retry
echo bootwave: could not start the rescue system (error ${errno}); retrying in 15 s
sleep 15
goto fetch
"#;

fn snapshot() -> Snapshot {
    let mut text = format!(
        "[[subnets]]\nnetwork = \"10.0.0.0/16\"\nnext-server = \"10.0.0.1\"\n\n[[profiles]]\nname = \"rescue\"\nscript = \"boot.ipxe\"\ntemplate = '''\n{TEMPLATE}'''\n"
    );
    for i in 0..HOSTS {
        let [_, _, hi, lo] = (i + 256).to_be_bytes();
        let _ = write!(
            text,
            "[[hosts]]\nname = \"n{i}\"\nmac = \"02:00:00:00:{hi:02x}:{lo:02x}\"\nfixed-address = \"10.0.{hi}.{lo}\"\nprofile = \"rescue\"\nlabels = {{ rack = \"r{}\" }}\n",
            i % 40
        );
    }
    Snapshot::new(parse(&text, "bench.toml", Path::new("/")).expect("valid bench config"))
}

fn bench(c: &mut Criterion) {
    let snap = snapshot();
    let request = |path| ResolveRequest {
        path,
        client: SocketAddr::from((Ipv4Addr::new(10, 0, 19, 136), 2070)),
        mac: Some([2, 0, 0, 0, 0x13, 0x88]),
    };
    let script = request("boot.ipxe");
    let rendered = script_for(&snap, &script).expect("host 4744 has the script");
    let mut g = c.benchmark_group("template");
    g.throughput(Throughput::Bytes(rendered.len() as u64));
    g.bench_function("script_for (find host, render)", |b| {
        b.iter(|| script_for(&snap, std::hint::black_box(&script)))
    });
    g.throughput(Throughput::Elements(1));
    let plain = request("refind_x64.efi");
    g.bench_function("plain file (path check only)", |b| {
        b.iter(|| script_for(&snap, std::hint::black_box(&plain)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
