//! Encoder throughput for a typical line (4 tags, 8 fields), ours against the
//! influxdb-line-protocol crate's builder measured in the same run.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use influxdb_line_protocol::LineProtocolBuilder;
use metrics_agent::output::{Decoration, FieldValue, Metric, encode_line};

/// Adds one of our fields to the crate's builder, whose `field` is generic over the value type
/// and whose state type changes after the first field (hence a macro, not a function).
macro_rules! add_field {
    ($b:expr, $kv:expr) => {{
        let (k, v) = $kv;
        match v {
            FieldValue::Float(x) => $b.field(k, *x),
            FieldValue::Int(x) => $b.field(k, *x),
            FieldValue::UInt(x) => $b.field(k, *x),
            FieldValue::Bool(x) => $b.field(k, *x),
            FieldValue::Str(x) => $b.field(k, x.as_str()),
        }
    }};
}

fn typical() -> Metric {
    Metric::new("http_response", 1_700_000_000_123_456_789)
        .tag("server", "https://example.com/health")
        .tag("method", "GET")
        .tag("status_code", "200")
        .tag("result", "success")
        .field("response_time", 0.012_345_678)
        .field("dns_time", 0.000_412)
        .field("connect_time", 0.000_611)
        .field("tls_time", 0.004_207)
        .field("ttfb", 0.007_105)
        .field("http_response_code", 200i64)
        .field("content_length", 1534i64)
        .field("result_code", 0i64)
}

fn bench(c: &mut Criterion) {
    let m = typical();
    let deco = Decoration::default();
    let mut g = c.benchmark_group("encode_typical_line");
    g.throughput(Throughput::Elements(1));
    let mut buf = Vec::with_capacity(64 * 1024);
    g.bench_function("ours", |b| {
        b.iter(|| {
            buf.clear();
            encode_line(&mut buf, black_box(&m), &deco).ok();
            black_box(buf.len())
        })
    });
    // The crate's builder owns its buffer and hands it back from build(): reuse it the same way.
    let mut peer_buf = Some(Vec::with_capacity(64 * 1024));
    g.bench_function("influxdb_line_protocol", |b| {
        b.iter(|| {
            let mut v = peer_buf.take().unwrap_or_default();
            v.clear();
            let m = black_box(&m);
            let mut t = LineProtocolBuilder::new_with(v)
                .measurement(&m.name)
                .tag(&m.tags[0].0, &m.tags[0].1);
            for (k, val) in &m.tags[1..] {
                t = t.tag(k, val);
            }
            let mut f = add_field!(t, &m.fields[0]);
            for kv in &m.fields[1..] {
                f = add_field!(f, kv);
            }
            let v = f.timestamp(m.timestamp_ns).close_line().build();
            let n = v.len();
            peer_buf = Some(v);
            black_box(n)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
