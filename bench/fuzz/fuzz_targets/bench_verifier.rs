//! The sinks' bookkeeping (`traffic::Verifier`) fed packets of anyone's making: the input is
//! a sequence of payloads (a length byte, then that many bytes), each verified and recorded
//! in a run of 4 sessions of 1000 packets. Never a panic; the counts stay consistent, and
//! no flow outside the run is kept.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xpptp_bench::traffic::payload::verify;
use xpptp_bench::traffic::{RunShape, Verifier};

const SHAPE: RunShape = RunShape {
    sessions: 4,
    packets_per_session: 1000,
};

fuzz_target!(|data: &[u8]| {
    let mut verifier = Verifier::new(SHAPE).expect("valid histogram bounds");
    let mut rest = data;
    let mut records = 0u64;
    let mut now = 0u64;
    while let Some((&len, tail)) = rest.split_first() {
        let (payload, next) = tail.split_at(usize::from(len).min(tail.len()));
        rest = next;
        now = now.wrapping_add(u64::from(len) << 20);
        verifier.record(verify(payload), now);
        records += 1;
    }
    let totals = verifier.totals();
    assert_eq!(
        totals.received + verifier.corrupt + verifier.foreign,
        records
    );
    assert!(totals.distinct <= totals.received);
    assert!(totals.reordered <= totals.distinct);
    assert_eq!(verifier.latency.len(), totals.received);
    for (&session, flow) in &verifier.flows {
        assert!(session < SHAPE.sessions);
        assert!(flow.distinct() <= SHAPE.packets_per_session);
    }
});
