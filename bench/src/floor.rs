//! The crypto floor: what MPPE alone costs per packet on one core, with our code
//! (`xpptp_proto::crypto::mppe`) and with OpenSSL, for the packets the benchmark sends.
//!
//! A worker's nanoseconds per packet mean little on their own on a shared 2-core VM; next to
//! the cost of the cipher work the packet cannot avoid, measured in the same run on the same
//! machine, they say how much the rest of the datapath adds. OpenSSL's figure says how far
//! our RC4 and SHA-1 are from a tuned implementation.
//!
//! # What is measured
//!
//! For each direction (encrypt, decrypt), keying (stateless: a key change per packet, that
//! is one SHA-1 and one RC4 key schedule, then a key schedule and the keystream; stateful:
//! the keystream, a key change every 256 packets), strength (40 and 128 bit) and packet size
//! (the inner IPv4 packet; MPPE encrypts it with its 2-octet PPP protocol field): batches of
//! a fixed number of packets are timed on one thread pinned to one core, after warm-up
//! batches, and the median batch gives nanoseconds per packet.
//!
//! The OpenSSL side composes RFC 3078/3079 from OpenSSL's primitives the way our code does:
//! `openssl::sha::Sha1` for GetNewKeyFromSHA and EVP RC4 contexts re-keyed in place
//! (`EVP_EncryptInit_ex` with a new key: a fresh key schedule, no allocation). OpenSSL 3
//! keeps RC4 in its legacy provider: [`OpensslRc4::load`] loads it when the default provider
//! has no RC4. Before measuring, both sides encrypt the same packets and must produce the
//! same bytes ([`FloorError::Mismatch`] otherwise): a floor of different work is no floor.
//!
//! The same approach as `proto/benches/mppe.rs` (criterion, for developers); this is the
//! run-time figure the suite reports next to the workers' nanoseconds per packet.

use std::hint::black_box;
use std::time::Instant;

use openssl::cipher::{Cipher, CipherRef};
use openssl::cipher_ctx::CipherCtx;
use openssl::error::ErrorStack;
use openssl::provider::Provider;
use serde::Serialize;
use xpptp_proto::crypto::mppe::{MppeDecryptor, MppeEncryptor, MppeMode, Verdict};
use xpptp_proto::crypto::mppe_keys::{MppeStrength, StartKey};
use xpptp_proto::wire::mppe::{COHERENCY_MASK, flags};

/// The sizes measured unless told otherwise (inner IPv4 packet octets).
pub const DEFAULT_SIZES: [usize; 3] = [64, 512, 1400];

/// The octets MPPE encrypts in front of the inner packet: the PPP protocol field 0x0021
/// (always two octets under MPPE, RFC 3078 section 3).
const PROTOCOL_FIELD_LEN: usize = 2;

/// Largest inner packet measured (a PPTP tunnel MTU never exceeds this).
pub const MAX_SIZE: usize = 65_535;

/// The start key both sides use. Any key gives the same cost; a fixed one keeps runs
/// comparable.
const START: StartKey = StartKey([
    0x1f, 0xb3, 0x17, 0x59, 0x8a, 0xc5, 0x0a, 0xca, 0xd0, 0x54, 0x2b, 0x06, 0x6d, 0x04, 0x6b, 0xa1,
]);

/// Why the floor could not be measured.
#[derive(Debug, thiserror::Error)]
pub enum FloorError {
    #[error(
        "OpenSSL has no RC4 cipher, even with its legacy provider loaded: {source}. OpenSSL 3 \
         keeps RC4 in the legacy provider module (legacy.so in the directory `openssl version \
         -m` names; Debian ships it in libssl3): install it, or point OPENSSL_MODULES at it"
    )]
    Rc4Unavailable {
        #[source]
        source: ErrorStack,
    },
    #[error(
        "an OpenSSL call failed while measuring: {0} (the RC4 context refused a key or an \
         update; check the OpenSSL installation)"
    )]
    OpenSsl(#[from] ErrorStack),
    #[error(
        "OpenSSL's MPPE and ours disagree on packet {packet} ({bits}-bit, {keying}): the two \
         would not be doing the same work, so there is no floor to report; this is a bug in \
         one of the two implementations"
    )]
    Mismatch {
        packet: usize,
        bits: u16,
        keying: &'static str,
    },
    #[error("our MPPE decryptor refused an in-order packet ({0:?}): a bug in the measurement")]
    Refused(Verdict),
    #[error("invalid floor configuration: {0}")]
    Config(String),
}

/// Encrypt or decrypt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Encrypt,
    Decrypt,
}

impl Direction {
    /// `encrypt` or `decrypt`.
    pub const fn name(self) -> &'static str {
        match self {
            Direction::Encrypt => "encrypt",
            Direction::Decrypt => "decrypt",
        }
    }
}

/// What to measure and how.
#[derive(Debug, Clone)]
pub struct FloorConfig {
    /// Inner IPv4 packet sizes (MPPE encrypts each plus its 2-octet protocol field).
    pub sizes: Vec<usize>,
    /// Packets per timed batch.
    pub packets: usize,
    /// Timed batches per case; the median is reported.
    pub batches: usize,
    /// Untimed batches before the timed ones (caches, branch predictors, frequency).
    pub warmup: usize,
    /// The core to pin the measuring thread to; `None`: the last core this process may use.
    pub core: Option<usize>,
}

impl Default for FloorConfig {
    fn default() -> FloorConfig {
        FloorConfig {
            sizes: DEFAULT_SIZES.to_vec(),
            packets: 2000,
            batches: 7,
            warmup: 2,
            core: None,
        }
    }
}

/// One case: ours and OpenSSL's cost of the same packets.
#[derive(Debug, Clone, Serialize)]
pub struct FloorCase {
    pub direction: Direction,
    /// Stateful keying (a key change every 256 packets) or stateless (every packet).
    pub stateful: bool,
    /// 40 or 128.
    pub bits: u16,
    /// Inner IPv4 packet octets.
    pub size: usize,
    /// Our code: median nanoseconds per packet.
    pub ours_ns: f64,
    /// OpenSSL: median nanoseconds per packet.
    pub openssl_ns: f64,
    /// `ours_ns / openssl_ns`.
    pub ratio: f64,
}

/// Every case of one run, with the conditions it ran under.
#[derive(Debug, Clone, Serialize)]
pub struct FloorReport {
    /// The core the measuring thread ran on.
    pub core: usize,
    /// Whether pinning to it succeeded (if not, the scheduler chose, and the figures are
    /// noisier).
    pub pinned: bool,
    /// `OpenSSL 3.0.x ...`.
    pub openssl_version: String,
    /// Whether our code was built with optimisations (a debug build's floor is not one).
    pub optimized: bool,
    pub packets_per_batch: usize,
    pub batches: usize,
    pub warmup_batches: usize,
    pub cases: Vec<FloorCase>,
}

impl FloorReport {
    /// The case of these parameters, if measured.
    pub fn case(
        &self,
        direction: Direction,
        stateful: bool,
        bits: u16,
        size: usize,
    ) -> Option<&FloorCase> {
        self.cases.iter().find(|c| {
            c.direction == direction && c.stateful == stateful && c.bits == bits && c.size == size
        })
    }

    /// A table for people: one line per case.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "MPPE crypto floor on core {}{} ({}; {} build; median of {} batches of {} packets, \
             {} warm-up)\n",
            self.core,
            if self.pinned { "" } else { " (not pinned)" },
            self.openssl_version,
            if self.optimized { "optimized" } else { "debug" },
            self.batches,
            self.packets_per_batch,
            self.warmup_batches,
        );
        out.push_str(
            "direction  keying     bits   size   ours ns/pkt  OpenSSL ns/pkt  ours/OpenSSL\n",
        );
        for c in &self.cases {
            out.push_str(&format!(
                "{:<10} {:<10} {:>4} {:>6} {:>13.1} {:>15.1} {:>13.2}\n",
                c.direction.name(),
                keying_name(c.stateful),
                c.bits,
                c.size,
                c.ours_ns,
                c.openssl_ns,
                c.ratio
            ));
        }
        out
    }
}

fn keying_name(stateful: bool) -> &'static str {
    if stateful { "stateful" } else { "stateless" }
}

fn strength(bits: u16) -> MppeStrength {
    if bits == 40 {
        MppeStrength::Bits40
    } else {
        MppeStrength::Bits128
    }
}

fn mode(stateful: bool) -> MppeMode {
    if stateful {
        MppeMode::Stateful
    } else {
        MppeMode::Stateless
    }
}

/// OpenSSL's RC4, with the provider that supplies it kept loaded as long as this lives.
pub struct OpensslRc4 {
    cipher: Cipher,
    _legacy: Option<Provider>,
}

impl std::fmt::Debug for OpensslRc4 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpensslRc4")
            .field("legacy_provider", &self._legacy.is_some())
            .finish()
    }
}

impl OpensslRc4 {
    /// Fetches RC4 from the loaded providers, loading OpenSSL 3's legacy provider (with the
    /// default one kept as fallback) when they have none.
    pub fn load() -> Result<OpensslRc4, FloorError> {
        if let Ok(cipher) = Cipher::fetch(None, "RC4", None) {
            return Ok(OpensslRc4 {
                cipher,
                _legacy: None,
            });
        }
        let legacy = Provider::try_load(None, "legacy", true)
            .map_err(|source| FloorError::Rc4Unavailable { source })?;
        let cipher = Cipher::fetch(None, "RC4", None)
            .map_err(|source| FloorError::Rc4Unavailable { source })?;
        tracing::debug!("RC4 from OpenSSL's legacy provider");
        Ok(OpensslRc4 {
            cipher,
            _legacy: Some(legacy),
        })
    }

    fn cipher(&self) -> &CipherRef {
        &self.cipher
    }
}

/// MPPE (RFC 3078 with the keys of RFC 3079) composed from OpenSSL's SHA-1 and RC4, the
/// reference our code is measured against. Encrypts and decrypts in-order packets of one
/// direction; RC4 is symmetric, so both are the same operation after the header.
pub struct OpensslMppe {
    start: [u8; 16],
    key: [u8; 16],
    /// 8 (40-bit) or 16 (128-bit) key octets.
    len: usize,
    bits40: bool,
    /// Re-keyed for every interim key.
    rekey_ctx: CipherCtx,
    /// The packet cipher: re-keyed per packet (stateless) or per flag packet (stateful).
    data_ctx: CipherCtx,
    ccount: u16,
    stateful: bool,
}

impl std::fmt::Debug for OpensslMppe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpensslMppe")
            .field("bits40", &self.bits40)
            .field("stateful", &self.stateful)
            .field("ccount", &self.ccount)
            .finish_non_exhaustive()
    }
}

impl OpensslMppe {
    /// One direction with start key `start`, 40- or 128-bit, positioned before count 0.
    pub fn new(
        rc4: &OpensslRc4,
        start: &StartKey,
        bits: u16,
        stateful: bool,
    ) -> Result<OpensslMppe, FloorError> {
        let bits40 = match bits {
            40 => true,
            128 => false,
            other => {
                return Err(FloorError::Config(format!(
                    "{other}-bit MPPE is not measured: use 40 or 128"
                )));
            }
        };
        let len = if bits40 { 8 } else { 16 };
        let ctx = || -> Result<CipherCtx, ErrorStack> {
            let mut ctx = CipherCtx::new()?;
            ctx.encrypt_init(Some(rc4.cipher()), None, None)?;
            ctx.set_key_length(len)?;
            Ok(ctx)
        };
        let mut m = OpensslMppe {
            start: start.0,
            key: [0; 16],
            len,
            bits40,
            rekey_ctx: ctx()?,
            data_ctx: ctx()?,
            ccount: COHERENCY_MASK,
            stateful,
        };
        let mut initial = m.sha(&start.0);
        m.reduce(&mut initial);
        m.key = initial;
        m.data_ctx.encrypt_init(None, Some(&m.key[..len]), None)?;
        Ok(m)
    }

    /// GetNewKeyFromSHA (RFC 3079 section 3.4) over the key-length prefixes.
    fn sha(&self, current: &[u8; 16]) -> [u8; 16] {
        let mut sha = openssl::sha::Sha1::new();
        sha.update(&self.start[..self.len]);
        sha.update(&[0u8; 40]);
        sha.update(&current[..self.len]);
        sha.update(&[0xf2u8; 40]);
        let digest = sha.finish();
        let mut out = [0u8; 16];
        out[..self.len].copy_from_slice(&digest[..self.len]);
        out
    }

    /// The 40-bit salt (RFC 3079 section 3.1).
    fn reduce(&self, key: &mut [u8; 16]) {
        if self.bits40 {
            key[..3].copy_from_slice(&[0xd1, 0x26, 0x9e]);
        }
    }

    /// GetKey (RFC 3078 section 7.3): SHA-1, then RC4 of the interim key with itself.
    fn next_key(&mut self) -> Result<(), ErrorStack> {
        let len = self.len;
        let mut interim = self.sha(&self.key);
        let key = interim;
        self.rekey_ctx.encrypt_init(None, Some(&key[..len]), None)?;
        self.rekey_ctx
            .cipher_update_inplace(&mut interim[..len], len)?;
        self.reduce(&mut interim);
        self.key = interim;
        Ok(())
    }

    /// Encrypts the next packet in place and returns its MPPE header.
    pub fn encrypt(&mut self, payload: &mut [u8]) -> Result<u16, ErrorStack> {
        self.ccount = (self.ccount + 1) & COHERENCY_MASK;
        let flag = self.ccount & 0xff == 0xff;
        let mut header = flags::ENCRYPTED | self.ccount;
        if !self.stateful || flag {
            self.next_key()?;
            self.data_ctx
                .encrypt_init(None, Some(&self.key[..self.len]), None)?;
            header |= flags::FLUSHED;
        }
        let len = payload.len();
        self.data_ctx.cipher_update_inplace(payload, len)?;
        Ok(header)
    }

    /// Decrypts the next packet in place, after the receiver's header check: encrypted, the
    /// next count in order (what [`encrypt`](Self::encrypt) would have sent). `Ok(false)`
    /// when the header is not that (nothing decrypted).
    pub fn decrypt(&mut self, header: u16, payload: &mut [u8]) -> Result<bool, ErrorStack> {
        let next = (self.ccount + 1) & COHERENCY_MASK;
        if header & flags::ENCRYPTED == 0 || header & COHERENCY_MASK != next {
            return Ok(false);
        }
        self.encrypt(payload).map(|_| true)
    }
}

/// The headers a sender of an in-order stream sends, from count 0 on.
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

/// Encrypts `packets` packets of varied lengths with ours and OpenSSL's MPPE and compares
/// headers and bytes; OpenSSL's ciphertext must also decrypt with our decryptor.
pub fn check_same_output(
    rc4: &OpensslRc4,
    bits: u16,
    stateful: bool,
    packets: usize,
) -> Result<(), FloorError> {
    let mismatch = |packet| FloorError::Mismatch {
        packet,
        bits,
        keying: keying_name(stateful),
    };
    let mut ours = MppeEncryptor::new(&START, strength(bits), mode(stateful));
    let mut theirs = OpensslMppe::new(rc4, &START, bits, stateful)?;
    let mut dec = MppeDecryptor::new(&START, strength(bits), mode(stateful));
    for n in 0..packets {
        let plain: Vec<u8> = (0..(n % 97 + 2))
            .map(|i| (i.wrapping_mul(31).wrapping_add(n)) as u8)
            .collect();
        let (mut a, mut b) = (plain.clone(), plain.clone());
        let header = ours.encrypt(&mut a);
        if header != theirs.encrypt(&mut b)? || a != b {
            return Err(mismatch(n));
        }
        if dec.decrypt(header, &mut b) != Verdict::Ok || b != plain {
            return Err(mismatch(n));
        }
    }
    Ok(())
}

/// Median nanoseconds per packet of `batches` timed batches of `packets` calls of `one`,
/// after `warmup` untimed batches.
fn time_per_packet(
    config: &FloorConfig,
    mut one: impl FnMut() -> Result<(), FloorError>,
) -> Result<f64, FloorError> {
    for _ in 0..config.warmup.saturating_mul(config.packets) {
        one()?;
    }
    let mut samples = Vec::with_capacity(config.batches);
    for _ in 0..config.batches {
        let start = Instant::now();
        for _ in 0..config.packets {
            one()?;
        }
        samples.push(start.elapsed().as_nanos() as f64 / config.packets as f64);
    }
    samples.sort_by(f64::total_cmp);
    Ok(samples.get(samples.len() / 2).copied().unwrap_or(f64::NAN))
}

/// One case's two figures.
fn measure_case(
    config: &FloorConfig,
    rc4: &OpensslRc4,
    direction: Direction,
    stateful: bool,
    bits: u16,
    size: usize,
) -> Result<FloorCase, FloorError> {
    let mut buf = vec![0x45u8; size + PROTOCOL_FIELD_LEN];
    let (ours_ns, openssl_ns) = match direction {
        Direction::Encrypt => {
            let mut enc = MppeEncryptor::new(&START, strength(bits), mode(stateful));
            let ours = time_per_packet(config, || {
                black_box(enc.encrypt(black_box(&mut buf)));
                Ok(())
            })?;
            let mut ossl = OpensslMppe::new(rc4, &START, bits, stateful)?;
            let theirs = time_per_packet(config, || {
                black_box(ossl.encrypt(black_box(&mut buf))?);
                Ok(())
            })?;
            (ours, theirs)
        }
        Direction::Decrypt => {
            let mut dec = MppeDecryptor::new(&START, strength(bits), mode(stateful));
            let mut headers = Headers { count: 0, stateful };
            let ours = time_per_packet(config, || {
                match dec.decrypt(headers.next(), black_box(&mut buf)) {
                    Verdict::Ok => Ok(()),
                    other => Err(FloorError::Refused(other)),
                }
            })?;
            let mut ossl = OpensslMppe::new(rc4, &START, bits, stateful)?;
            let mut headers = Headers { count: 0, stateful };
            let theirs = time_per_packet(config, || {
                if ossl.decrypt(headers.next(), black_box(&mut buf))? {
                    Ok(())
                } else {
                    Err(FloorError::Config(
                        "OpenSSL side refused an in-order header: a bug in the measurement".into(),
                    ))
                }
            })?;
            (ours, theirs)
        }
    };
    Ok(FloorCase {
        direction,
        stateful,
        bits,
        size,
        ours_ns,
        openssl_ns,
        ratio: ours_ns / openssl_ns,
    })
}

fn validate(config: &FloorConfig) -> Result<(), FloorError> {
    if config.sizes.is_empty() {
        return Err(FloorError::Config("no packet sizes given".into()));
    }
    if let Some(bad) = config.sizes.iter().find(|s| **s == 0 || **s > MAX_SIZE) {
        return Err(FloorError::Config(format!(
            "packet size {bad} is outside 1..={MAX_SIZE}"
        )));
    }
    if config.packets == 0 || config.batches == 0 {
        return Err(FloorError::Config(
            "packets per batch and batches must be at least 1".into(),
        ));
    }
    Ok(())
}

/// Chooses the core: the one asked for (it must be one this process may use), else the
/// last one (on this machine's two cores, away from core 0's interrupts).
fn choose_core(asked: Option<usize>) -> Result<Option<core_affinity::CoreId>, FloorError> {
    let ids = core_affinity::get_core_ids().unwrap_or_default();
    match asked {
        Some(id) => match ids.iter().find(|c| c.id == id) {
            Some(core) => Ok(Some(*core)),
            None => Err(FloorError::Config(format!(
                "core {id} is not one this process may run on (allowed: {:?}); pick one of \
                 those with --core",
                ids.iter().map(|c| c.id).collect::<Vec<_>>()
            ))),
        },
        None => Ok(ids.last().copied()),
    }
}

/// Measures every case (encrypt and decrypt, stateless and stateful, 40 and 128 bit, each
/// size) on one thread pinned to one core, after checking that both implementations
/// produce the same ciphertext. Takes about `16 x sizes x (warmup + batches) x packets`
/// packet operations.
pub fn measure(config: &FloorConfig) -> Result<FloorReport, FloorError> {
    validate(config)?;
    let core = choose_core(config.core)?;
    let rc4 = OpensslRc4::load()?;
    for bits in [40, 128] {
        for stateful in [false, true] {
            // 600 packets: past two stateful key changes (every 256).
            check_same_output(&rc4, bits, stateful, 600)?;
        }
    }
    std::thread::scope(|scope| {
        let worker = scope.spawn(|| -> Result<FloorReport, FloorError> {
            let pinned = core.is_some_and(core_affinity::set_for_current);
            if !pinned {
                tracing::warn!(
                    ?core,
                    "could not pin the crypto floor's thread; its figures will be noisier"
                );
            }
            let mut cases = Vec::new();
            for direction in [Direction::Encrypt, Direction::Decrypt] {
                for stateful in [false, true] {
                    for bits in [40, 128] {
                        for &size in &config.sizes {
                            cases
                                .push(measure_case(config, &rc4, direction, stateful, bits, size)?);
                        }
                    }
                }
            }
            Ok(FloorReport {
                core: core.map_or(0, |c| c.id),
                pinned,
                openssl_version: openssl::version::version().to_owned(),
                optimized: !cfg!(debug_assertions),
                packets_per_batch: config.packets,
                batches: config.batches,
                warmup_batches: config.warmup,
                cases,
            })
        });
        worker
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// `xpptp-bench floor`: the MPPE crypto floor on one core, ours against OpenSSL.
#[derive(Debug, clap::Args)]
pub struct FloorArgs {
    /// Inner IPv4 packet sizes, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = DEFAULT_SIZES)]
    pub sizes: Vec<usize>,
    /// Packets per timed batch.
    #[arg(long, default_value_t = 2000)]
    pub packets: usize,
    /// Timed batches per case (the median is reported).
    #[arg(long, default_value_t = 7)]
    pub batches: usize,
    /// Untimed warm-up batches per case.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// The core to pin to (default: the last one this process may use).
    #[arg(long)]
    pub core: Option<usize>,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs `xpptp-bench floor`.
pub fn run(args: &FloorArgs) -> anyhow::Result<()> {
    let config = FloorConfig {
        sizes: args.sizes.clone(),
        packets: args.packets,
        batches: args.batches,
        warmup: args.warmup,
        core: args.core,
    };
    let report = measure(&config)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_text());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn openssl_mppe_is_byte_identical_to_ours() {
        let rc4 = OpensslRc4::load().unwrap();
        for bits in [40, 128] {
            for stateful in [false, true] {
                // Past two stateful key changes, and one more than a full count cycle for
                // stateless (the count wraps at 4096).
                let packets = if stateful { 600 } else { 4200 };
                check_same_output(&rc4, bits, stateful, packets)
                    .unwrap_or_else(|e| panic!("{bits}-bit stateful={stateful}: {e}"));
            }
        }
    }

    #[test]
    fn the_check_catches_a_different_construction() {
        // 40-bit keys on one side, 128-bit on the other: the check must notice.
        let rc4 = OpensslRc4::load().unwrap();
        let mut ours = MppeEncryptor::new(&START, MppeStrength::Bits40, MppeMode::Stateless);
        let mut theirs = OpensslMppe::new(&rc4, &START, 128, false).unwrap();
        let (mut a, mut b) = (vec![0u8; 32], vec![0u8; 32]);
        assert_eq!(ours.encrypt(&mut a), theirs.encrypt(&mut b).unwrap());
        assert_ne!(a, b);
    }

    #[test]
    fn openssl_decrypt_refuses_an_out_of_order_header() {
        let rc4 = OpensslRc4::load().unwrap();
        let mut m = OpensslMppe::new(&rc4, &START, 128, false).unwrap();
        let mut buf = [0u8; 8];
        assert!(
            !m.decrypt(flags::ENCRYPTED | flags::FLUSHED | 5, &mut buf)
                .unwrap()
        );
        assert!(
            m.decrypt(flags::ENCRYPTED | flags::FLUSHED, &mut buf)
                .unwrap()
        );
    }

    #[test]
    fn measure_reports_every_case_once() {
        let config = FloorConfig {
            sizes: vec![64, 200],
            packets: 8,
            batches: 3,
            warmup: 1,
            core: None,
        };
        let report = measure(&config).unwrap();
        assert_eq!(report.cases.len(), 2 * 2 * 2 * 2);
        for direction in [Direction::Encrypt, Direction::Decrypt] {
            for stateful in [false, true] {
                for bits in [40, 128] {
                    for size in [64, 200] {
                        let c = report.case(direction, stateful, bits, size).unwrap();
                        assert!(c.ours_ns > 0.0 && c.openssl_ns > 0.0, "{c:?}");
                        assert_eq!(c.ratio, c.ours_ns / c.openssl_ns);
                    }
                }
            }
        }
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["cases"][0]["direction"], "encrypt");
        assert!(report.to_text().lines().count() == 2 + report.cases.len());
    }

    #[test]
    fn bad_configurations_are_refused_with_the_reason() {
        let sizes = FloorConfig {
            sizes: vec![0],
            ..FloorConfig::default()
        };
        assert!(matches!(measure(&sizes), Err(FloorError::Config(_))));
        let core = FloorConfig {
            core: Some(100_000),
            ..FloorConfig::default()
        };
        let err = measure(&core).unwrap_err().to_string();
        assert!(err.contains("core 100000"), "{err}");
    }
}
