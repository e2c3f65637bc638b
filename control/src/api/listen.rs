//! The control socket's file and who may connect to it, as the datapath's command socket
//! does it: the directory is created `0750`, the socket is `0600`, and every connection's
//! peer credentials (SO_PEERCRED, taken by the kernel at connect time) must be root or the
//! daemon's own user. The file modes keep others out; the credential check is what still
//! holds when an administrator loosens the modes or the directory is shared.

use std::fs::{self, DirBuilder, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::UnixListener;

/// Mode of the directory the socket is created in (when it creates it).
pub const DIR_MODE: u32 = 0o750;
/// Mode of the socket file.
pub const SOCKET_MODE: u32 = 0o600;

/// Why the control socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// The directory could not be created.
    #[error(
        "cannot create the control socket's directory {path}: {source} (fix: run as root or \
         pick --control-socket in a writable directory)"
    )]
    Directory {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Something answers on the path.
    #[error(
        "another process is listening on {0} (another xpptp-control running?); stop it or \
         pick another --control-socket"
    )]
    InUse(PathBuf),
    /// The path is taken by something else than a socket.
    #[error(
        "{0} exists and is not a socket; refusing to replace it (remove it or pick another \
         --control-socket)"
    )]
    NotASocket(PathBuf),
    /// A stale socket could not be removed.
    #[error("cannot replace the stale control socket {path}: {source}")]
    Stale {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// bind, listen or chmod failed.
    #[error("cannot listen on {path}: {source}")]
    Bind {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// Creates `path`'s directory (mode [`DIR_MODE`], if missing), replaces a stale socket file
/// (one nothing listens on), binds and sets the socket's mode to [`SOCKET_MODE`]. Must run
/// on a tokio runtime.
pub async fn listen(path: &Path) -> Result<UnixListener, ListenError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir)
            .map_err(|source| ListenError::Directory {
                path: dir.to_owned(),
                source,
            })?;
    }
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if tokio::net::UnixStream::connect(path).await.is_ok() {
                return Err(ListenError::InUse(path.to_owned()));
            }
            tracing::info!(path = %path.display(), "replacing a stale control socket");
            fs::remove_file(path).map_err(|source| ListenError::Stale {
                path: path.to_owned(),
                source,
            })?;
        }
        Ok(_) => return Err(ListenError::NotASocket(path.to_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(ListenError::Stale {
                path: path.to_owned(),
                source,
            });
        }
    }
    let bind = |source| ListenError::Bind {
        path: path.to_owned(),
        source,
    };
    let listener = UnixListener::bind(path).map_err(bind)?;
    // Between bind and chmod the file has the umask's mode, inside a 0750 directory.
    fs::set_permissions(path, Permissions::from_mode(SOCKET_MODE)).map_err(bind)?;
    Ok(listener)
}

/// Who is on the other end of a connection: (pid, uid) as the kernel recorded them.
pub fn peer(stream: &tokio::net::UnixStream) -> io::Result<(i32, u32)> {
    let cred = rustix::net::sockopt::socket_peercred(stream)?;
    Ok((cred.pid.as_raw_pid(), cred.uid.as_raw()))
}

/// Whether `uid` may use the control socket: root, or the user the daemon runs as.
pub fn allowed(uid: u32) -> bool {
    uid == 0 || uid == rustix::process::geteuid().as_raw()
}
