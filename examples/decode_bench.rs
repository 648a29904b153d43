//! Decode-only benchmark of a `/v1/jobs` answer: the job skimmer against
//! serde_json over the same bytes, in the same run. No network: the body is
//! built in memory from the fake Nomad's synthetic jobs (Nomad 1.10 shapes)
//! and fed to the streaming decoder in 64 KiB chunks.
//!
//!     cargo run --release --example decode_bench -- [--jobs 100000] [--rounds 15]
//!
//! Rows (best of --rounds, so that a noisy machine shows its quiet speed):
//! - `skimmer`: what the daemon runs (`JobStub`);
//! - `serde_json typed`: the same model decoded by serde_json alone;
//! - `serde_json skip only`: serde_json passing over every element without
//!   keeping anything (`IgnoredAny`): the floor for any serde_json decoder;
//! - `walk, checks nothing`: one pass that only finds the strings (eight
//!   bytes per step, as the skimmer does) and counts separators, with no
//!   grammar check and no fields read: the floor for a byte-by-byte scanner
//!   of this kind, not a usable decoder.

#[path = "../tests/support/fake_nomad/mod.rs"]
mod fake_nomad;

use std::time::Instant;

use nomad_metrics::gauges::server::JobCounts;
use nomad_metrics::nomad::model::JobStub;
use nomad_metrics::nomad::skim::ListElement;
use nomad_metrics::nomad::stream::ArrayDecoder;
use serde::de::IgnoredAny;

/// `JobStub` with the fast path turned off.
#[derive(serde::Deserialize)]
#[serde(transparent)]
struct SerdeOnly(JobStub);
impl ListElement for SerdeOnly {}

/// The "checks nothing" floor: skips strings eight bytes at a time and
/// counts `{` and `,` outside them. Returns (best milliseconds, count).
fn walk(body: &[u8], rounds: usize) -> (f64, usize) {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let below = |v: u64, n: u8| v.wrapping_sub(ONES * u64::from(n)) & !v & HIGHS;
    let mut best = f64::MAX;
    let mut n = 0;
    for _ in 0..rounds {
        let start = Instant::now();
        n = 0;
        let mut i = 0;
        while let Some(&c) = body.get(i) {
            i += 1;
            if c != b'"' {
                n += usize::from(c == b'{' || c == b',');
                continue;
            }
            while let Some(word) = body.get(i..i + 8) {
                let mut raw = [0u8; 8];
                raw.copy_from_slice(word);
                let v = u64::from_le_bytes(raw);
                let hit = below(v ^ (ONES * u64::from(b'"')), 1)
                    | below(v ^ (ONES * u64::from(b'\\')), 1);
                if hit != 0 {
                    i += (hit.trailing_zeros() / 8) as usize;
                    break;
                }
                i += 8;
            }
            while body.get(i).is_some_and(|&b| b != b'"') {
                i += 1;
            }
            i += 1;
        }
        best = best.min(start.elapsed().as_secs_f64() * 1e3);
    }
    (best, n)
}

/// Decodes `body` in 64 KiB chunks; returns (best milliseconds, elements).
fn run<T: ListElement>(body: &[u8], rounds: usize, mut take: impl FnMut(T)) -> (f64, usize) {
    let mut best = f64::MAX;
    let mut n = 0;
    for _ in 0..rounds {
        let start = Instant::now();
        n = 0;
        let mut each = |item: T| {
            n += 1;
            take(item);
        };
        let mut decoder = ArrayDecoder::new(4 << 20);
        for chunk in body.chunks(64 << 10) {
            if let Err(e) = decoder.feed(chunk, &mut each) {
                eprintln!("decode error: {e}");
                std::process::exit(1);
            }
        }
        if let Err(e) = decoder.finish(&mut each) {
            eprintln!("decode error: {e}");
            std::process::exit(1);
        }
        best = best.min(start.elapsed().as_secs_f64() * 1e3);
    }
    (best, n)
}

fn main() {
    let mut jobs = 100_000usize;
    let mut rounds = 15usize;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().and_then(|v| v.parse().ok());
        match (flag.as_str(), value) {
            ("--jobs", Some(v)) => jobs = v,
            ("--rounds", Some(v)) if v > 0 => rounds = v,
            _ => {
                eprintln!("usage: decode_bench [--jobs N] [--rounds N]");
                std::process::exit(2);
            }
        }
    }
    let mut body = b"[".to_vec();
    for (i, item) in fake_nomad::synthetic(fake_nomad::List::Jobs, jobs, 0)
        .iter()
        .enumerate()
    {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&item.json);
    }
    body.push(b']');
    let mb = body.len() as f64 / 1e6;

    // Both decoders count the same jobs the same way.
    let mut fast = JobCounts::default();
    let mut slow = JobCounts::default();
    let (_, n1) = run::<JobStub>(&body, 1, |j| fast.add(&j));
    let (_, n2) = run::<SerdeOnly>(&body, 1, |j| slow.add(&j.0));
    if n1 != jobs || n2 != jobs || fast != slow {
        eprintln!("the skimmer and serde_json disagree");
        std::process::exit(1);
    }

    let (skim_ms, _) = run::<JobStub>(&body, rounds, |j| fast.add(&j));
    let (typed_ms, _) = run::<SerdeOnly>(&body, rounds, |j| slow.add(&j.0));
    let (skip_ms, _) = run::<IgnoredAny>(&body, rounds, |_| {});
    let (walk_ms, tokens) = walk(&body, rounds);
    println!("{jobs} jobs, {mb:.1} MB, best of {rounds} ({tokens} separators walked)");
    println!("| decoder | ms | MB/s | time / skimmer |");
    println!("|---|---:|---:|---:|");
    for (name, ms) in [
        ("skimmer (the daemon)", skim_ms),
        ("serde_json typed", typed_ms),
        ("serde_json skip only", skip_ms),
        ("walk, checks nothing", walk_ms),
    ] {
        println!(
            "| {name} | {ms:.1} | {:.0} | {:.2} |",
            mb / ms * 1e3,
            ms / skim_ms
        );
    }
}
