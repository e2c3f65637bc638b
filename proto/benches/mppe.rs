//! MPPE cipher throughput: our code against OpenSSL's RC4 and SHA-1 composed the same way.
//!
//! Run: `cargo bench -p xpptp-proto --bench mppe -- --warm-up-time 1 --measurement-time 3`
//!
//! Cases (128-bit keys; 64, 512 and 1400-octet payloads):
//! * `encrypt_stateless`, `decrypt_stateless`: one key change (SHA-1 + RC4 key schedule +
//!   16 keystream octets) and one RC4 key schedule + keystream per packet.
//! * `encrypt_stateful`, `decrypt_stateful`: keystream per packet, a key change every 256.
//! * `batch32_stateless`: 32 packets through `encrypt`/`decrypt` one by one against
//!   `encrypt_batch`/`decrypt_batch` (interleaved key schedules).
//! * `key_chain`: one `KeyChain::advance`.
//! * `rc4_key_schedule`, `rc4_keystream`: RC4 alone, three implementations in the same run
//!   (our `crypto::mppe::Rc4`, the RustCrypto `rc4` crate, OpenSSL): one key schedule, our
//!   four-way interleaved schedule (per key), and the keystream over each payload size.
//!   These figures are what `Rc4`'s documentation quotes for keeping our own RC4.
//!
//! The OpenSSL side uses the EVP RC4 of the legacy provider through a `CipherCtx` that is
//! re-keyed per packet (`EVP_EncryptInit_ex` with a new key: a fresh key schedule, no
//! allocation) and `openssl::sha::Sha1`. Before measuring, both sides encrypt the same
//! packets and must produce the same bytes.
//!
//! After the groups, Markdown tables of criterion's mean estimates
//! (`target/criterion/<group>/<side>/<size>/new/estimates.json`) are printed: ours against
//! OpenSSL per case, the RC4 components of the three implementations, and batch against
//! one-by-one.

// A benchmark harness: no untrusted input, and a failed OpenSSL call should stop the run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use openssl::cipher::Cipher;
use openssl::cipher_ctx::CipherCtx;
use openssl::provider::Provider;
use xpptp_proto::crypto::mppe::{KeyChain, MppeDecryptor, MppeEncryptor, MppeMode, Rc4, Verdict};
use xpptp_proto::crypto::mppe_keys::{MppeStrength, SessionKey, StartKey};
use xpptp_proto::wire::mppe::{COHERENCY_MASK, flags};

const SIZES: [usize; 3] = [64, 512, 1400];
const STRENGTH: MppeStrength = MppeStrength::Bits128;
const START: StartKey = StartKey([
    0x1f, 0xb3, 0x17, 0x59, 0x8a, 0xc5, 0x0a, 0xca, 0xd0, 0x54, 0x2b, 0x06, 0x6d, 0x04, 0x6b, 0xa1,
]);

/// The same MPPE construction on OpenSSL primitives (128-bit only).
struct OpensslMppe {
    start: [u8; 16],
    key: [u8; 16],
    /// Re-keyed for every interim key.
    rekey_ctx: CipherCtx,
    /// The packet cipher: re-keyed per packet (stateless) or per flag packet (stateful).
    data_ctx: CipherCtx,
    ccount: u16,
    stateful: bool,
}

impl OpensslMppe {
    fn new(rc4: &Cipher, start: &StartKey, stateful: bool) -> OpensslMppe {
        let mut rekey_ctx = CipherCtx::new().unwrap();
        rekey_ctx.encrypt_init(Some(rc4), None, None).unwrap();
        rekey_ctx.set_key_length(16).unwrap();
        let mut data_ctx = CipherCtx::new().unwrap();
        data_ctx.encrypt_init(Some(rc4), None, None).unwrap();
        data_ctx.set_key_length(16).unwrap();
        let mut m = OpensslMppe {
            start: start.0,
            key: start.0,
            rekey_ctx,
            data_ctx,
            ccount: COHERENCY_MASK,
            stateful,
        };
        m.key = m.sha(&start.0);
        m.data_ctx.encrypt_init(None, Some(&m.key), None).unwrap();
        m
    }

    fn sha(&self, current: &[u8; 16]) -> [u8; 16] {
        let mut sha = openssl::sha::Sha1::new();
        sha.update(&self.start);
        sha.update(&[0u8; 40]);
        sha.update(current);
        sha.update(&[0xf2u8; 40]);
        let digest = sha.finish();
        let mut out = [0u8; 16];
        out.copy_from_slice(&digest[..16]);
        out
    }

    fn next_key(&mut self) {
        let mut interim = self.sha(&self.key);
        self.rekey_ctx
            .encrypt_init(None, Some(&interim), None)
            .unwrap();
        self.rekey_ctx
            .cipher_update_inplace(&mut interim, 16)
            .unwrap();
        self.key = interim;
    }

    /// Encrypts or decrypts (RC4 is symmetric) the next packet in place.
    fn crypt(&mut self, payload: &mut [u8]) -> u16 {
        self.ccount = (self.ccount + 1) & COHERENCY_MASK;
        let flag = self.ccount & 0xff == 0xff;
        let mut h = flags::ENCRYPTED | self.ccount;
        if !self.stateful || flag {
            self.next_key();
            self.data_ctx
                .encrypt_init(None, Some(&self.key), None)
                .unwrap();
            h |= flags::FLUSHED;
        }
        let len = payload.len();
        self.data_ctx.cipher_update_inplace(payload, len).unwrap();
        h
    }
}

fn mode(stateful: bool) -> MppeMode {
    if stateful {
        MppeMode::Stateful
    } else {
        MppeMode::Stateless
    }
}

/// Both implementations must produce the same bytes, or the comparison means nothing.
fn check_same_output(rc4: &Cipher) {
    for stateful in [false, true] {
        let mut ours = MppeEncryptor::new(&START, STRENGTH, mode(stateful));
        let mut theirs = OpensslMppe::new(rc4, &START, stateful);
        for n in 0..600usize {
            let plain: Vec<u8> = (0..(n % 97 + 2)).map(|i| (i * 31 + n) as u8).collect();
            let (mut a, mut b) = (plain.clone(), plain.clone());
            assert_eq!(ours.encrypt(&mut a), theirs.crypt(&mut b));
            assert_eq!(a, b, "packet {n}, stateful {stateful}");
        }
    }
}

/// A stream of valid headers for a decryptor that expects count 0 next.
struct Headers {
    count: u16,
    stateful: bool,
}

impl Headers {
    fn next(&mut self) -> u16 {
        let c = self.count;
        self.count = (self.count + 1) & COHERENCY_MASK;
        let flushed = !self.stateful || c & 0xff == 0xff;
        flags::ENCRYPTED | c | if flushed { flags::FLUSHED } else { 0 }
    }
}

fn bench_cipher(c: &mut Criterion, rc4: &Cipher) {
    for stateful in [false, true] {
        let label = if stateful { "stateful" } else { "stateless" };

        let mut group = c.benchmark_group(format!("encrypt_{label}"));
        for size in SIZES {
            group.throughput(Throughput::Bytes(size as u64));
            let mut buf = vec![0x45u8; size];
            let mut enc = MppeEncryptor::new(&START, STRENGTH, mode(stateful));
            group.bench_with_input(BenchmarkId::new("ours", size), &size, |b, _| {
                b.iter(|| black_box(enc.encrypt(black_box(&mut buf))))
            });
            let mut ossl = OpensslMppe::new(rc4, &START, stateful);
            group.bench_with_input(BenchmarkId::new("openssl", size), &size, |b, _| {
                b.iter(|| black_box(ossl.crypt(black_box(&mut buf))))
            });
        }
        group.finish();

        let mut group = c.benchmark_group(format!("decrypt_{label}"));
        for size in SIZES {
            group.throughput(Throughput::Bytes(size as u64));
            let mut buf = vec![0x45u8; size];
            let mut dec = MppeDecryptor::new(&START, STRENGTH, mode(stateful));
            let mut headers = Headers { count: 0, stateful };
            group.bench_with_input(BenchmarkId::new("ours", size), &size, |b, _| {
                b.iter(|| {
                    let v = dec.decrypt(headers.next(), black_box(&mut buf));
                    debug_assert_eq!(v, Verdict::Ok);
                    black_box(v)
                })
            });
            let mut ossl = OpensslMppe::new(rc4, &START, stateful);
            let mut headers = Headers { count: 0, stateful };
            group.bench_with_input(BenchmarkId::new("openssl", size), &size, |b, _| {
                b.iter(|| {
                    // The same header check a receiver does, then the same crypto.
                    let h = headers.next();
                    black_box(h & flags::ENCRYPTED != 0);
                    black_box(ossl.crypt(black_box(&mut buf)))
                })
            });
        }
        group.finish();
    }
}

const BATCH: usize = 32;

fn bench_batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("batch32_stateless");
    for size in SIZES {
        group.throughput(Throughput::Bytes((size * BATCH) as u64));
        let mut bufs = vec![vec![0x45u8; size]; BATCH];
        let mut hdrs = [0u16; BATCH];

        let mut enc = MppeEncryptor::new(&START, STRENGTH, MppeMode::Stateless);
        group.bench_with_input(BenchmarkId::new("encrypt_loop", size), &size, |b, _| {
            b.iter(|| {
                for (p, h) in bufs.iter_mut().zip(hdrs.iter_mut()) {
                    *h = enc.encrypt(p);
                }
                black_box(&hdrs);
            })
        });
        let mut enc = MppeEncryptor::new(&START, STRENGTH, MppeMode::Stateless);
        group.bench_with_input(BenchmarkId::new("encrypt_batch", size), &size, |b, _| {
            b.iter(|| {
                let mut refs: [&mut [u8]; BATCH] = std::array::from_fn(|_| &mut [][..]);
                for (r, p) in refs.iter_mut().zip(bufs.iter_mut()) {
                    *r = p.as_mut_slice();
                }
                black_box(enc.encrypt_batch(&mut refs, &mut hdrs))
            })
        });

        let mut dec = MppeDecryptor::new(&START, STRENGTH, MppeMode::Stateless);
        let mut headers = Headers {
            count: 0,
            stateful: false,
        };
        let mut verdicts = [Verdict::Ok; BATCH];
        group.bench_with_input(BenchmarkId::new("decrypt_loop", size), &size, |b, _| {
            b.iter(|| {
                for (p, v) in bufs.iter_mut().zip(verdicts.iter_mut()) {
                    *v = dec.decrypt(headers.next(), p);
                }
                black_box(&verdicts);
            })
        });
        let mut dec = MppeDecryptor::new(&START, STRENGTH, MppeMode::Stateless);
        let mut headers = Headers {
            count: 0,
            stateful: false,
        };
        group.bench_with_input(BenchmarkId::new("decrypt_batch", size), &size, |b, _| {
            b.iter(|| {
                for h in hdrs.iter_mut() {
                    *h = headers.next();
                }
                let mut refs: [&mut [u8]; BATCH] = std::array::from_fn(|_| &mut [][..]);
                for (r, p) in refs.iter_mut().zip(bufs.iter_mut()) {
                    *r = p.as_mut_slice();
                }
                black_box(dec.decrypt_batch(&hdrs, &mut refs, &mut verdicts))
            })
        });
    }
    group.finish();
}

fn bench_parts(c: &mut Criterion, rc4: &Cipher) {
    let mut group = c.benchmark_group("key_chain");
    let mut chain = KeyChain::new(&START, STRENGTH);
    group.bench_function("ours", |b| {
        b.iter(|| {
            chain.advance();
            black_box(chain.key());
        })
    });
    let mut ossl = OpensslMppe::new(rc4, &START, false);
    group.bench_function("openssl", |b| {
        b.iter(|| {
            ossl.next_key();
            black_box(&ossl.key);
        })
    });
    group.finish();

    // RC4 alone, three implementations side by side: our `Rc4`, the RustCrypto `rc4`
    // crate and OpenSSL's EVP RC4. Same 16-octet key, same run.
    let mut group = c.benchmark_group("rc4_key_schedule");
    let mut keys = [SessionKey::initial(&START, STRENGTH); 4];
    for i in 1..4 {
        keys[i] = keys[i - 1].next(&START);
    }
    let key16: [u8; 16] = keys[0].as_bytes().try_into().unwrap();
    group.bench_function("ours", |b| {
        b.iter(|| black_box(Rc4::with_key(black_box(&keys[0]))))
    });
    group.bench_function("crate", |b| {
        b.iter(|| black_box(<rc4::Rc4 as rc4::KeyInit>::new_from_slice(black_box(&key16)).unwrap()))
    });
    let mut ctx = rc4_ctx(rc4);
    group.bench_function("openssl", |b| {
        b.iter(|| {
            ctx.encrypt_init(None, Some(black_box(&key16)), None)
                .unwrap();
            black_box(&ctx);
        })
    });
    // Per key: the time of one interleaved group of four, divided by four (printed so).
    group.throughput(Throughput::Elements(4));
    group.bench_function("ours_x4_interleaved", |b| {
        b.iter(|| {
            black_box(Rc4::with_keys_x4([
                black_box(&keys[0]),
                &keys[1],
                &keys[2],
                &keys[3],
            ]))
        })
    });
    group.finish();

    // The keystream XORed over a buffer, the state running on between iterations (as in
    // stateful mode; stateless adds one key schedule per packet).
    let mut group = c.benchmark_group("rc4_keystream");
    for size in SIZES {
        group.throughput(Throughput::Bytes(size as u64));
        let mut buf = vec![0x45u8; size];
        let mut ours = Rc4::with_key(&keys[0]);
        group.bench_with_input(BenchmarkId::new("ours", size), &size, |b, _| {
            b.iter(|| ours.apply_keystream(black_box(&mut buf)))
        });
        let mut krate = <rc4::Rc4 as rc4::KeyInit>::new_from_slice(&key16).unwrap();
        group.bench_with_input(BenchmarkId::new("crate", size), &size, |b, _| {
            b.iter(|| rc4::StreamCipher::apply_keystream(&mut krate, black_box(&mut buf)))
        });
        let mut ctx = rc4_ctx(rc4);
        ctx.encrypt_init(None, Some(&key16), None).unwrap();
        group.bench_with_input(BenchmarkId::new("openssl", size), &size, |b, _| {
            b.iter(|| {
                ctx.cipher_update_inplace(black_box(&mut buf), size)
                    .unwrap()
            })
        });
    }
    group.finish();
}

/// An EVP RC4 context with a 16-octet key length, not yet keyed.
fn rc4_ctx(rc4: &Cipher) -> CipherCtx {
    let mut ctx = CipherCtx::new().unwrap();
    ctx.encrypt_init(Some(rc4), None, None).unwrap();
    ctx.set_key_length(16).unwrap();
    ctx
}

fn benches(c: &mut Criterion) {
    // Kept alive for the whole run: RC4 lives in OpenSSL 3's legacy provider.
    let _legacy = Provider::try_load(None, "legacy", true).expect("OpenSSL legacy provider");
    let rc4 = Cipher::fetch(None, "RC4", None).expect("RC4 from the legacy provider");
    check_same_output(&rc4);
    bench_cipher(c, &rc4);
    bench_batch(c);
    bench_parts(c, &rc4);
}

criterion_group!(mppe, benches);

fn criterion_dir() -> Option<PathBuf> {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return Some(PathBuf::from(home));
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return Some(PathBuf::from(target).join("criterion"));
    }
    // Cargo runs benches from the package directory; the target directory is the
    // workspace's, somewhere above.
    let mut dir = std::env::current_dir().ok()?;
    loop {
        let candidate = dir.join("target").join("criterion");
        if candidate.is_dir() {
            return Some(candidate);
        }
        if !dir.pop() {
            return None;
        }
    }
}

/// Mean time in nanoseconds from criterion's `estimates.json`, without a JSON parser: the
/// first `point_estimate` after `"mean"`.
fn mean_ns(dir: &Path, group: &str, side: &str, size: &str) -> Option<f64> {
    let path = dir
        .join(group)
        .join(side)
        .join(size)
        .join("new/estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let mean = text.find("\"mean\"")?;
    let rest = &text[mean..];
    let at = rest.find("\"point_estimate\":")? + "\"point_estimate\":".len();
    let rest = &rest[at..];
    let end = rest.find([',', '}'])?;
    rest[..end].trim().parse().ok()
}

/// A time or ratio cell: one decimal for nanoseconds, two for ratios, `-` when missing.
fn ns(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.1}"))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) => format!("{:.2}", a / b),
        _ => "-".to_string(),
    }
}

/// The summary the issue quotes: Markdown tables of criterion's mean estimates.
fn print_summary() {
    let Some(dir) = criterion_dir() else {
        println!("no criterion output directory found; no summary");
        return;
    };
    let size_names = SIZES.map(|s| s.to_string());

    println!("\n## MPPE per packet: ours against OpenSSL composed the same way");
    println!(
        "mean ns per packet, 128-bit keys; ratio ours/OpenSSL, below 1 means ours is faster\n"
    );
    println!(
        "| {:<18} | {:>5} | {:>9} | {:>10} | {:>12} |",
        "case", "size", "ours ns", "OpenSSL ns", "ours/OpenSSL"
    );
    println!(
        "|{:-<20}|{:->7}|{:->11}|{:->12}|{:->14}|",
        "", "", "", "", ""
    );
    for group in [
        "encrypt_stateless",
        "decrypt_stateless",
        "encrypt_stateful",
        "decrypt_stateful",
    ] {
        for size in &size_names {
            let a = mean_ns(&dir, group, "ours", size);
            let b = mean_ns(&dir, group, "openssl", size);
            println!(
                "| {group:<18} | {size:>5} | {:>9} | {:>10} | {:>12} |",
                ns(a),
                ns(b),
                ratio(a, b)
            );
        }
    }
    let a = mean_ns(&dir.join("key_chain"), "ours", "", "");
    let b = mean_ns(&dir.join("key_chain"), "openssl", "", "");
    println!(
        "| {:<18} | {:>5} | {:>9} | {:>10} | {:>12} |",
        "key_chain advance",
        "-",
        ns(a),
        ns(b),
        ratio(a, b)
    );

    println!("\n## RC4 components: our Rc4, the RustCrypto rc4 0.2 crate, OpenSSL EVP RC4");
    println!("mean ns, 16-octet key; keystream XORed in place with the state running on\n");
    println!(
        "| {:<30} | {:>9} | {:>9} | {:>10} | {:>10} | {:>12} | {:>13} |",
        "component",
        "ours ns",
        "crate ns",
        "OpenSSL ns",
        "ours/crate",
        "ours/OpenSSL",
        "crate/OpenSSL"
    );
    println!(
        "|{:-<32}|{:->11}|{:->11}|{:->12}|{:->12}|{:->14}|{:->15}|",
        "", "", "", "", "", "", ""
    );
    let row = |name: &str, a: Option<f64>, c: Option<f64>, o: Option<f64>| {
        println!(
            "| {name:<30} | {:>9} | {:>9} | {:>10} | {:>10} | {:>12} | {:>13} |",
            ns(a),
            ns(c),
            ns(o),
            ratio(a, c),
            ratio(a, o),
            ratio(c, o)
        );
    };
    let ks = dir.join("rc4_key_schedule");
    let sched = |side: &str| mean_ns(&ks, side, "", "");
    let crate_sched = sched("crate");
    row("key schedule", sched("ours"), crate_sched, sched("openssl"));
    row(
        "key schedule, 4 interleaved/4",
        sched("ours_x4_interleaved").map(|t| t / 4.0),
        crate_sched,
        sched("openssl"),
    );
    for size in &size_names {
        let side = |side: &str| mean_ns(&dir, "rc4_keystream", side, size);
        row(
            &format!("keystream {size} octets"),
            side("ours"),
            side("crate"),
            side("openssl"),
        );
    }

    println!("\n## A batch of {BATCH} stateless packets: batch API against one by one");
    println!("mean ns per packet\n");
    println!(
        "| {:<14} | {:>5} | {:>8} | {:>11} | {:>11} |",
        "case", "size", "batch ns", "one-by-one", "batch/loop"
    );
    println!(
        "|{:-<16}|{:->7}|{:->10}|{:->13}|{:->13}|",
        "", "", "", "", ""
    );
    for size in &size_names {
        for (batch, single) in [
            ("encrypt_batch", "encrypt_loop"),
            ("decrypt_batch", "decrypt_loop"),
        ] {
            let per_packet = |side: &str| {
                mean_ns(&dir, "batch32_stateless", side, size).map(|t| t / BATCH as f64)
            };
            let (a, b) = (per_packet(batch), per_packet(single));
            println!(
                "| {batch:<14} | {size:>5} | {:>8} | {:>11} | {:>11} |",
                ns(a),
                ns(b),
                ratio(a, b)
            );
        }
    }
}

fn main() {
    mppe();
    Criterion::default().configure_from_args().final_summary();
    print_summary();
}
