//! xpptp's control plane: the `xpptp-control` daemon's library.
//!
//! * [`config`]: the configuration: the native TOML file, or an existing Poptop install
//!   (pptpd.conf, the pppd options file, chap-secrets) read as it is.
//! * [`pool`]: the client address pool (ranges, lists, fixed per-user addresses).
//! * [`daemon`]: TCP 1723, one task per control connection running proto's PPTP
//!   [`Connection`](xpptp_proto::pptp::control::Connection) and the call's
//!   [`Session`](xpptp_proto::session::Session), GRE on a raw socket until the call is
//!   established, then the hand-over to the datapath.
//! * [`datapath`]: the client of the datapath's command socket (establish, remove,
//!   send_ppp; punted frames back), reconnecting and resynchronising.
//! * [`api`]: the daemon's control socket for the `xpptp` tool, and its client (ctlsock).
//! * [`metrics`]: Prometheus text exposition over HTTP (off unless configured).

// ctlsock: the control socket.
pub mod api;
// cli: the operator's tool `xpptp` (src/bin/xpptp.rs).
pub mod cli;
pub mod config;
pub mod daemon;
pub mod datapath;
// metrics: the Prometheus endpoint (issue 6 item 2).
pub mod metrics;
pub mod pool;
