//! The traffic engine: drives packets through a concentrator as its clients and its inside
//! host would, verifies them on the far side, and measures what the datapath spent.
//!
//! * [`session`]: one client's call ([`TrafficSession`]) from the client's
//!   [`Established`](xpptp_proto::session::Established), built on the datapath's own
//!   fast-path functions (`encap` upstream, `decap` downstream) with the client's state, so
//!   frames are exactly what a PPTP client sends: Ethernet, IPv4, GRE v1, PPP, MPPE
//!   (stateless or stateful), inner IPv4/UDP from the client's tunnel address.
//!   [`KeyedCall`] makes both ends of a call with keys the caller chooses.
//! * [`payload`]: the verifiable payload (magic, session, sequence, send time, pattern).
//! * [`io`]: senders (raw IPv4 `sendmmsg`, AF_XDP through the datapath's `XskSocket`, UDP
//!   `sendmmsg` downstream), paced in batches; sinks (UDP at the inside host, raw GRE at
//!   the clients), `recvmmsg`.
//! * [`verify`]: per-flow received / lost / reordered / duplicated, latency histogram.
//! * [`impair`]: seeded loss, reordering and duplication by the sender.
//! * [`cost`]: the datapath workers' counters and CPU time, before and after.
//! * [`report`]: [`TrafficReport`], everything a run measured.
//! * [`cli`]: `xpptp-bench traffic`, over sessions whose keys are in a JSON file.
//! * [`run`]: [`run::run`], upstream then downstream with the workers sampled around each.
//!
//! A run is bounded by packet count, never by time. Sizes are inner IPv4 lengths.

pub mod cli;
pub mod cost;
pub mod impair;
pub mod io;
pub mod payload;
pub mod report;
pub mod run;
pub mod session;
pub mod verify;

pub use cost::{CostReport, CostSample};
pub use impair::Impairment;
pub use io::{
    FrameOut, RawIpSender, SendPlan, SendStats, SinkStop, XskSender, bind_downstream, bind_inside,
    client_sink, inside_sink, open_gre_sink, open_raw_ip, send_downstream, send_upstream,
};
pub use report::{Conditions, DirectionReport, TrafficReport};
pub use session::{KeyedCall, L2Addresses, SessionRx, SessionTx, SizeMix, TrafficSession};
pub use verify::{RunShape, Verifier};
