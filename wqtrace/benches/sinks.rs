//! What each sink costs per event in wqtrace's own process, apart from the kernel and the
//! rings: serve's metrics, the TUI's model, and `record`'s encoder with zstd, over one
//! synthetic stream of notification-pipe events (`recording::fixtures::busy_stream`: posts,
//! reads, losses, waits, contention on 4 pipes). `cargo xtask bench` runs it and reports it
//! beside the end-to-end runs, where the tracer's CPU per event is these costs plus draining.
//! Prints one JSON object: nanoseconds per event (median of the repetitions) per sink.

use std::time::Instant;

use wqtrace::{
    model::{Model, ModelConfig},
    recording::{Header, Writer, fixtures::busy_stream},
    sinks::serve::metrics::{BuildInfo, Metrics, Options},
};

/// As serve and the live source hand them over.
const BATCH: usize = 4096;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median ns per event of `run` over the stream, `reps` times.
fn per_event(reps: usize, n: usize, mut run: impl FnMut()) -> f64 {
    median(
        (0..reps)
            .map(|_| {
                let t = Instant::now();
                run();
                t.elapsed().as_nanos() as f64 / n as f64
            })
            .collect(),
    )
}

fn main() {
    // `cargo bench` passes --bench; a test run (`cargo test --benches`) does not, and
    // `cargo xtask bench --quick` asks for --quick: a short stream then, not a measurement.
    let args: Vec<String> = std::env::args().collect();
    let full = args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--quick");
    let (n, reps) = if full { (200_000, 7) } else { (2_000, 1) };
    let events = busy_stream(n, 4, 1);
    let serve = per_event(reps, n, || {
        let (mut m, reg) = Metrics::new(Options::default(), &BuildInfo::default());
        for b in events.chunks(BATCH) {
            m.apply_batch(b);
        }
        std::hint::black_box((m, reg));
    });
    let model = per_event(reps, n, || {
        let mut m = Model::new(ModelConfig::default());
        for e in &events {
            m.apply(e);
        }
        std::hint::black_box(m);
    });
    let mut bytes = 0;
    let record = per_event(reps, n, || {
        let mut w = Writer::new(Vec::new(), &Header::default()).expect("in memory");
        for e in &events {
            w.push(e).expect("in memory");
        }
        let (out, _) = w.finish("end").expect("in memory");
        bytes = out.len();
    });
    println!(
        "{}",
        serde_json::json!({
            "events": n,
            "reps": reps,
            "ns_per_event": {"serve": serve, "tui_model": model, "record": record},
            "record_bytes_per_event": bytes as f64 / n as f64,
        })
    );
}
