//! A blocking client of the command socket: what the `xpptp` tool, the control plane's
//! first cut and the tests use.

use std::collections::VecDeque;
use std::io;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use xpptp_proto::command::{Frame, Hello, HelloReply, Message};

use super::wire::{ReadError, WriteError, read_frame, write_frame};

/// What went wrong talking to the datapath.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot connect to the datapath's command socket {path}: {source} (is xpptp-datapath running, and are you root?)"
    )]
    Connect {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("the datapath answered request {expected} with {got:?} (request {got_id})")]
    Unexpected {
        expected: u32,
        got_id: u32,
        got: Box<Message>,
    },
    #[error("setting a socket timeout failed")]
    Timeout(#[source] io::Error),
}

/// One connection to the datapath. Requests are answered in order; events (request id 0)
/// that arrive while a reply is awaited are kept for [`Client::next_event`].
#[derive(Debug)]
pub struct Client {
    stream: UnixStream,
    buf: Vec<u8>,
    next_id: u32,
    events: VecDeque<Message>,
}

impl Client {
    /// Connects and says hello; `subscribe` asks for the event stream.
    pub fn connect(
        path: &Path,
        name: &str,
        subscribe: bool,
    ) -> Result<(Client, HelloReply), ClientError> {
        let stream = UnixStream::connect(path).map_err(|source| ClientError::Connect {
            path: path.display().to_string(),
            source,
        })?;
        let mut client = Client {
            stream,
            buf: Vec::new(),
            next_id: 1,
            events: VecDeque::new(),
        };
        let hello = Message::Hello(Hello {
            client: name.to_owned(),
            subscribe,
        });
        let id = client.next_id;
        match client.request(hello)? {
            Message::HelloReply(reply) => Ok((client, reply)),
            other => Err(ClientError::Unexpected {
                expected: id,
                got_id: id,
                got: Box::new(other),
            }),
        }
    }

    /// Sends `message` and returns the reply (Done, Failed, CallList, ...).
    pub fn request(&mut self, message: Message) -> Result<Message, ClientError> {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        write_frame(&mut self.stream, &Frame::new(id, message))?;
        self.stream
            .set_read_timeout(None)
            .map_err(ClientError::Timeout)?;
        loop {
            let frame = read_frame(&mut self.stream, &mut self.buf)?;
            match frame.request_id {
                0 if is_event(&frame.message) => self.events.push_back(frame.message),
                got_id if got_id == id => return Ok(frame.message),
                got_id => {
                    return Err(ClientError::Unexpected {
                        expected: id,
                        got_id,
                        got: Box::new(frame.message),
                    });
                }
            }
        }
    }

    /// The next event, waiting up to `timeout` (`None` when none came).
    ///
    /// The server writes each frame with one `write`, which a Unix stream socket delivers
    /// whole for frames of this size; a timeout in the middle of a frame would leave the
    /// stream out of step, and the next read then fails with a framing error.
    pub fn next_event(&mut self, timeout: Duration) -> Result<Option<Message>, ClientError> {
        if let Some(event) = self.events.pop_front() {
            return Ok(Some(event));
        }
        let timeout = timeout.max(Duration::from_millis(1));
        self.stream
            .set_read_timeout(Some(timeout))
            .map_err(ClientError::Timeout)?;
        match read_frame(&mut self.stream, &mut self.buf) {
            Ok(frame) => Ok(Some(frame.message)),
            Err(ReadError::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }
}

fn is_event(message: &Message) -> bool {
    matches!(
        message,
        Message::PppFromPeer(_) | Message::ResetRequestNeeded(_)
    )
}
