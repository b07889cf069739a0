//! The listening side of the operator API: a thread that accepts
//! connections and one short-lived thread per connection that reads one
//! request, hands it to the control thread and writes back its answer.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use super::{Request, Response, MAX_REQUEST};

/// How long a client may take to send its request, and the control thread
/// to answer it.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// A request waiting for the control thread.
pub struct Pending {
    pub request: Request,
    pub reply: mpsc::Sender<Response>,
}

/// The bound socket. Dropping it stops accepting and removes the file.
pub struct Listener {
    path: PathBuf,
    stop: Arc<AtomicBool>,
}

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("can't create the socket directory {dir}: {source}")]
    Dir { dir: String, source: std::io::Error },
    #[error(
        "another weir is already listening on {path}; stop it, or give this one another --socket"
    )]
    InUse { path: String },
    #[error("can't listen on {path}: {source}")]
    Bind {
        path: String,
        source: std::io::Error,
    },
}

impl Listener {
    /// Bind `path` (mode 0600; its directory is created 0700 when missing)
    /// and start accepting. Each request goes to `forward`; when that
    /// returns false (the control thread is gone) the client gets an error.
    pub fn bind(
        path: &Path,
        forward: impl Fn(Pending) -> bool + Send + Sync + 'static,
    ) -> Result<Listener, ListenError> {
        let shown = path.display().to_string();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(|source| ListenError::Dir {
                        dir: dir.display().to_string(),
                        source,
                    })?;
            }
        }
        if path.exists() {
            // A live listener answers a connect; a stale file from a
            // process that died does not, and is removed.
            if UnixStream::connect(path).is_ok() {
                return Err(ListenError::InUse { path: shown });
            }
            let _ = std::fs::remove_file(path);
        }
        let listener = UnixListener::bind(path).map_err(|source| ListenError::Bind {
            path: shown.clone(),
            source,
        })?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(
            |source| ListenError::Bind {
                path: shown.clone(),
                source,
            },
        )?;
        let stop = Arc::new(AtomicBool::new(false));
        let forward = Arc::new(forward);
        let stopping = stop.clone();
        std::thread::Builder::new()
            .name("weir-api".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if stopping.load(Ordering::Acquire) {
                        return;
                    }
                    let Ok(conn) = conn else { continue };
                    let forward = forward.clone();
                    let spawned = std::thread::Builder::new()
                        .name("weir-api-conn".into())
                        .spawn(move || serve(conn, &*forward));
                    if let Err(e) = spawned {
                        tracing::warn!("api: can't start a connection thread: {e}");
                    }
                }
            })
            .map_err(|source| ListenError::Bind {
                path: shown,
                source,
            })?;
        Ok(Listener {
            path: path.to_path_buf(),
            stop,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wake the accept loop so it sees the flag, then remove the file.
        let _ = UnixStream::connect(&self.path);
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Parse one request (JSON), hand it to the control thread through
/// `forward` and wait for the answer. Shared by the unix socket and the
/// HTTP listener's token-guarded `POST /api`.
pub fn dispatch(body: &str, forward: &dyn Fn(Pending) -> bool) -> Response {
    match serde_json::from_str::<Request>(body) {
        Err(e) => Response::error(format!(
            "bad request: {e}; expected a JSON object with \"cmd\": show | class_change | reload | stats"
        )),
        Ok(request) => {
            let (reply, answer) = mpsc::channel();
            if forward(Pending { request, reply }) {
                answer
                    .recv_timeout(ANSWER_TIMEOUT)
                    .unwrap_or_else(|_| Response::error("weir did not answer in time (stopping?)"))
            } else {
                Response::error("weir is stopping")
            }
        }
    }
}

fn serve(conn: UnixStream, forward: &dyn Fn(Pending) -> bool) {
    let _ = conn.set_read_timeout(Some(IO_TIMEOUT));
    let _ = conn.set_write_timeout(Some(IO_TIMEOUT));
    let mut line = String::new();
    let read = BufReader::new((&conn).take(MAX_REQUEST as u64)).read_line(&mut line);
    let response = match read {
        Ok(0) => return,
        Err(e) => Response::error(format!("reading the request: {e}")),
        Ok(_) if !line.ends_with('\n') => Response::error(format!(
            "request too long or not terminated; expected one JSON line of at most {MAX_REQUEST} bytes"
        )),
        Ok(_) => dispatch(&line, forward),
    };
    let mut text = serde_json::to_string(&response)
        .unwrap_or_else(|_| r#"{"ok":false,"error":"unencodable response"}"#.to_string());
    text.push('\n');
    let mut conn = conn;
    let _ = conn.write_all(text.as_bytes());
}
