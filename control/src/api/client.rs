//! A blocking client of the control socket, for the `xpptp` tool and tests: one request at
//! a time, each waiting for its reply.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use xpptp_proto::control_api::{
    DecodeError, EncodeError, FailureCode, Frame, GetSession, HEADER_LEN, Hello, HelloReply, Kind,
    ListSessions, MAX_LIST_PAGE, Message, SessionDetail, SessionSelector, SessionState,
    SessionSummary, Stats, Terminate, TerminateTarget, frame_len,
};

/// How long a reply may take (the daemon's own datapath requests time out sooner).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a request did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket could not be reached.
    #[error(
        "cannot connect to the control socket {path}: {source} (is xpptp-control running? \
         run as root or as the daemon's user, or pass the socket's path)"
    )]
    Connect {
        /// The socket.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Reading or writing failed (the daemon went away, or did not answer in time).
    #[error("control socket: {0}")]
    Io(#[from] io::Error),
    /// The daemon's reply did not decode (another version of xpptp?).
    #[error("control socket reply: {0} (are xpptp and xpptp-control the same version?)")]
    Decode(#[from] DecodeError),
    /// The request could not be encoded.
    #[error("cannot encode the request: {0}")]
    Encode(#[from] EncodeError),
    /// The daemon refused the request.
    #[error("{detail} ({code:?})")]
    Failed {
        /// Its code.
        code: FailureCode,
        /// Its text.
        detail: String,
    },
    /// A reply of the wrong kind or for another request.
    #[error("control socket: unexpected reply {0:?}")]
    Unexpected(Kind),
}

/// A connection to the daemon's control socket.
#[derive(Debug)]
pub struct ControlClient {
    stream: UnixStream,
    next_id: u32,
    server: HelloReply,
}

impl ControlClient {
    /// Connects to `path` and says hello as `client` ("xpptp 0.1.0").
    pub fn connect(path: &Path, client: &str) -> Result<ControlClient, ClientError> {
        let stream = UnixStream::connect(path).map_err(|source| ClientError::Connect {
            path: path.to_owned(),
            source,
        })?;
        stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
        stream.set_write_timeout(Some(REPLY_TIMEOUT))?;
        let mut this = ControlClient {
            stream,
            next_id: 1,
            server: HelloReply {
                server: String::new(),
                uptime_secs: 0,
                datapath_connected: false,
            },
        };
        let hello = Message::Hello(Hello {
            client: client.into(),
        });
        match this.request(hello)? {
            Message::HelloReply(reply) => this.server = reply,
            other => return Err(ClientError::Unexpected(other.kind())),
        }
        Ok(this)
    }

    /// What the daemon said at connect time (version, uptime, datapath).
    pub fn server(&self) -> &HelloReply {
        &self.server
    }

    /// Sends `message` and returns its reply; a [`Message::Failed`] reply is an error.
    pub fn request(&mut self, message: Message) -> Result<Message, ClientError> {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let sent = self.stream.write_all(&Frame::new(id, message).to_vec()?);
        // A refusal (permission, busy) may have come and the daemon closed before the
        // write: read it rather than report the broken pipe.
        let reply = self.read_reply(id);
        match (sent, reply) {
            (Err(error), Err(ClientError::Io(_))) => Err(error.into()),
            (_, reply) => reply,
        }
    }

    fn read_reply(&mut self, id: u32) -> Result<Message, ClientError> {
        let mut bytes = vec![0u8; HEADER_LEN];
        self.stream.read_exact(&mut bytes)?;
        let total = frame_len(&bytes)?.unwrap_or(HEADER_LEN);
        bytes.resize(total, 0);
        self.stream
            .read_exact(bytes.get_mut(HEADER_LEN..).unwrap_or_default())?;
        let Some((frame, _)) = Frame::decode(&bytes)? else {
            return Err(ClientError::Io(io::ErrorKind::UnexpectedEof.into()));
        };
        match frame.message {
            // Refusals before any request (permission, busy) carry id 0.
            Message::Failed(failed) if frame.request_id == id || frame.request_id == 0 => {
                Err(ClientError::Failed {
                    code: failed.code,
                    detail: failed.detail,
                })
            }
            reply if frame.request_id == id => Ok(reply),
            other => Err(ClientError::Unexpected(other.kind())),
        }
    }

    /// Every session matching the filters, page by page.
    pub fn list_sessions(
        &mut self,
        state: Option<SessionState>,
        user: Option<&[u8]>,
    ) -> Result<Vec<SessionSummary>, ClientError> {
        let mut all = Vec::new();
        let mut start = 0u16;
        loop {
            let request = Message::ListSessions(ListSessions {
                start,
                max: MAX_LIST_PAGE,
                state,
                user: user.map(<[u8]>::to_vec),
            });
            let page = match self.request(request)? {
                Message::SessionList(page) => page,
                other => return Err(ClientError::Unexpected(other.kind())),
            };
            all.extend(page.sessions);
            match page.next {
                Some(next) if next > start => start = next,
                _ => return Ok(all),
            }
        }
    }

    /// One session (by ID) or a user's sessions, with what they negotiated.
    pub fn get_session(
        &mut self,
        selector: SessionSelector,
    ) -> Result<Vec<SessionDetail>, ClientError> {
        match self.request(Message::GetSession(GetSession { selector }))? {
            Message::SessionDetails(details) => Ok(details.sessions),
            other => Err(ClientError::Unexpected(other.kind())),
        }
    }

    /// Ends sessions; returns how many were told to end.
    pub fn terminate(&mut self, target: TerminateTarget) -> Result<u32, ClientError> {
        match self.request(Message::Terminate(Terminate { target }))? {
            Message::Terminated(done) => Ok(done.count),
            other => Err(ClientError::Unexpected(other.kind())),
        }
    }

    /// The daemon's and the datapath's counters.
    pub fn stats(&mut self) -> Result<Stats, ClientError> {
        match self.request(Message::GetStats)? {
            Message::Stats(stats) => Ok(*stats),
            other => Err(ClientError::Unexpected(other.kind())),
        }
    }
}
