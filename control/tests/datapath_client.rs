//! The datapath command client against a mock datapath on a Unix socket (no root needed).
//!
//! * `resynchronises_after_either_side_restarts`: on connecting, the client says Hello
//!   (subscribed) and removes a call the datapath has but control does not know (control
//!   restarted); an established call is pushed; when the datapath restarts (a new mock on
//!   the same path, empty), the client reconnects and pushes that call again with
//!   `replace`, removes the new mock's unknown call and keeps the known one; remove then
//!   takes the call out; a punted PPP frame comes out on the event channel.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use xpptp_control::datapath::{DatapathClient, DatapathEvent};
use xpptp_proto::command::{
    self, CallInfo, CallList, Frame, HelloReply, Message, PppFromPeer, Traffic,
};
use xpptp_proto::crypto::mppe::MppeMode;
use xpptp_proto::crypto::mppe_keys::{MppeStrength, StartKey};
use xpptp_proto::ppp::auth::Method;
use xpptp_proto::ppp::ipcp::NameServers;
use xpptp_proto::ppp::link::Role;
use xpptp_proto::pptp::gre::GreSnapshot;
use xpptp_proto::session::{Established, MppeKeyState};

use common::{PATIENCE, TempDir, eventually};

fn established(id: u16) -> Established {
    let key = |byte| MppeKeyState {
        strength: MppeStrength::Bits128,
        mode: MppeMode::Stateless,
        start_key: StartKey([byte; 16]),
    };
    Established {
        role: Role::Server,
        local_call_id: id,
        peer_call_id: 0x8001,
        peer_address: Ipv4Addr::new(192, 0, 2, 10),
        peer_recv_window: 64,
        user: Some(b"pptpuser".to_vec()),
        auth_method: Some(Method::MsChapV2),
        client_tunnel_address: Ipv4Addr::new(10, 64, 0, 2),
        server_tunnel_address: Some(Ipv4Addr::new(10, 64, 0, 1)),
        name_servers: NameServers::default(),
        transmit: Some(key(0xa5)),
        receive: Some(key(0x5a)),
        gre: GreSnapshot {
            local_call_id: id,
            peer_call_id: 0x8001,
            next_seq: 17,
            peer_acked: 15,
            ack_owed: Some(9),
            recv_highest: Some(9),
            peer_recv_window: 64,
        },
        peer_mru: 1400,
        our_mru: 1400,
        mtu: 1396,
        acfc: true,
        pfc: false,
    }
}

fn call_info(id: u16) -> CallInfo {
    CallInfo {
        local_call_id: id,
        peer_call_id: 1,
        peer_address: Ipv4Addr::new(192, 0, 2, 99),
        client_tunnel_address: Ipv4Addr::new(10, 64, 0, 99),
        user: None,
        transmit: None,
        receive: None,
        mtu: 1396,
        upstream_owner: None,
        downstream_owner: None,
        age_secs: 1,
        upstream: Traffic::default(),
        downstream: Traffic::default(),
        dropped: 0,
    }
}

/// A mock datapath: lists `calls` (plus what it was told to establish), records every
/// request, and can push frames to its clients. Aborting it closes every connection.
struct Mock {
    log: Arc<Mutex<Vec<Message>>>,
    push: mpsc::UnboundedSender<Message>,
    task: JoinHandle<()>,
}

impl Mock {
    fn start(path: &Path, calls: Vec<u16>) -> Mock {
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path).unwrap();
        let log: Arc<Mutex<Vec<Message>>> = Arc::default();
        let table = Arc::new(Mutex::new(calls));
        let (push, mut pushed) = mpsc::unbounded_channel::<Message>();
        let task_log = Arc::clone(&log);
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            let mut writers: Vec<mpsc::UnboundedSender<Message>> = Vec::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let (stream, _) = accepted.unwrap();
                        let (tx, rx) = mpsc::unbounded_channel();
                        writers.push(tx);
                        connections.spawn(serve(stream, Arc::clone(&task_log), Arc::clone(&table), rx));
                    }
                    Some(message) = pushed.recv() => {
                        for writer in &writers {
                            let _ = writer.send(message.clone());
                        }
                    }
                }
            }
        });
        Mock { log, push, task }
    }

    fn requests(&self) -> Vec<Message> {
        self.log.lock().unwrap().clone()
    }

    fn stop(self) {
        self.task.abort();
    }
}

async fn serve(
    mut stream: UnixStream,
    log: Arc<Mutex<Vec<Message>>>,
    table: Arc<Mutex<Vec<u16>>>,
    mut events: mpsc::UnboundedReceiver<Message>,
) {
    let mut buffer = Vec::new();
    let mut chunk = vec![0u8; 65536];
    loop {
        tokio::select! {
            read = stream.read(&mut chunk) => {
                let n = match read {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                buffer.extend_from_slice(&chunk[..n]);
                while let Some(total) = command::frame_len(&buffer).unwrap() {
                    if buffer.len() < total {
                        break;
                    }
                    let (frame, _) = Frame::decode(&buffer[..total]).unwrap().unwrap();
                    buffer.drain(..total);
                    let reply = {
                        let mut table = table.lock().unwrap();
                        match &frame.message {
                            Message::Hello(_) => Message::HelloReply(HelloReply {
                                server: "mock".into(),
                                workers: 1,
                                calls: table.len() as u32,
                            }),
                            Message::ListCalls(list) => Message::CallList(CallList {
                                calls: table
                                    .iter()
                                    .filter(|id| **id >= list.start)
                                    .map(|id| call_info(*id))
                                    .collect(),
                                next: None,
                            }),
                            Message::Establish(e) => {
                                table.retain(|id| *id != e.call.local_call_id);
                                table.push(e.call.local_call_id);
                                Message::Done
                            }
                            Message::Remove(r) => {
                                table.retain(|id| *id != r.call);
                                Message::Done
                            }
                            other => panic!("unexpected {other:?}"),
                        }
                    };
                    log.lock().unwrap().push(frame.message);
                    stream
                        .write_all(&Frame::new(frame.request_id, reply).to_vec().unwrap())
                        .await
                        .unwrap();
                }
            }
            Some(event) = events.recv() => {
                stream.write_all(&Frame::new(0, event).to_vec().unwrap()).await.unwrap();
            }
        }
    }
}

fn removes(log: &[Message]) -> Vec<u16> {
    log.iter()
        .filter_map(|m| match m {
            Message::Remove(r) => Some(r.call),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn resynchronises_after_either_side_restarts() {
    let dir = TempDir::new("dpc");
    let path = dir.0.join("datapath.sock");

    // Control "restarted": the datapath still has call 0x1234 from before.
    let first = Mock::start(&path, vec![0x1234]);
    let (client, mut events) = DatapathClient::start(&path);
    tokio::time::timeout(PATIENCE, client.wait_connected())
        .await
        .expect("connects");
    let log = first.requests();
    assert!(
        matches!(&log[0], Message::Hello(h) if h.subscribe),
        "Hello with subscribe first: {log:?}"
    );
    assert_eq!(removes(&log), vec![0x1234], "unknown call removed");

    client.establish(established(7)).await.unwrap();
    assert!(
        first
            .requests()
            .iter()
            .any(|m| matches!(m, Message::Establish(e) if e.call.local_call_id == 7 && e.replace))
    );
    assert_eq!(client.established_calls(), vec![7]);

    // The datapath restarts empty apart from a call of nobody's (9).
    first.stop();
    eventually("the client notices", || !client.is_connected()).await;
    let second = Mock::start(&path, vec![9]);
    tokio::time::timeout(PATIENCE, client.wait_connected())
        .await
        .expect("reconnects");
    let log = second.requests();
    let pushed: Vec<&Established> = log
        .iter()
        .filter_map(|m| match m {
            Message::Establish(e) if e.replace => Some(&e.call),
            _ => None,
        })
        .collect();
    assert_eq!(
        pushed,
        vec![&established(7)],
        "call 7 pushed again, unchanged"
    );
    assert_eq!(removes(&log), vec![9], "only the unknown call removed");

    // A punted frame reaches the event channel.
    second
        .push
        .send(Message::PppFromPeer(PppFromPeer {
            call: 7,
            frame: vec![0xc0, 0x21, 9, 1, 0, 8, 0, 0, 0, 0],
        }))
        .unwrap();
    let event = tokio::time::timeout(PATIENCE, events.recv())
        .await
        .expect("event in time")
        .expect("channel open");
    assert!(
        matches!(event, DatapathEvent::PppFromPeer(ref p) if p.call == 7),
        "{event:?}"
    );

    client.remove(7).await.unwrap();
    assert_eq!(removes(&second.requests()), vec![9, 7]);
    assert!(client.established_calls().is_empty());
    second.stop();
}
