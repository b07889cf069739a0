//! The operator API: JSON lines over a unix socket, and the typed stats
//! ([`Stats`], `snapshot.rs`) that its `stats` answer, `weir run --json`,
//! the metrics endpoint and `weir top` share.
//!
//! `weir run` listens on a unix stream socket (default
//! [`DEFAULT_SOCKET`], mode 0600 in a 0700 directory: root only). A client
//! connects, writes one [`Request`] as a JSON line, reads one [`Response`]
//! line, and the connection ends. The `weir show`, `weir class change`,
//! `weir reload` and `weir top` commands are such clients; scripts can be
//! too (`socat - UNIX-CONNECT:/run/weir/weir.sock`).
//!
//! The listener thread only parses and forwards: every request is answered
//! by the control thread, which owns the running configuration and the
//! data path handle, so requests are serialised with signals and the
//! once-a-second work, and nothing here touches a worker.

mod server;
pub mod snapshot;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use server::{dispatch, Listener, Pending};
pub use snapshot::Stats;

/// Where `weir run` listens unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/weir/weir.sock";

/// The longest request line accepted (a request is a few hundred bytes).
pub const MAX_REQUEST: usize = 64 * 1024;

/// What `weir show` shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShowWhat {
    Class,
    Qdisc,
    Filter,
    /// Per app: flows, packets, bytes, drops, class, remark; and the flow
    /// table.
    Apps,
}

/// What `weir show flows` ranks by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowsBy {
    /// The flow's rate (see [`snapshot::FlowStats::rate`]).
    #[default]
    Rate,
    Bytes,
}

impl FlowsBy {
    pub fn name(self) -> &'static str {
        match self {
            FlowsBy::Rate => "rate",
            FlowsBy::Bytes => "bytes",
        }
    }
}

/// Flows `weir show flows` shows unless told otherwise.
pub const DEFAULT_TOP: usize = 10;

fn default_top() -> usize {
    DEFAULT_TOP
}

/// One request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// `weir show class|qdisc|filter|apps [-s] [-j] [--tree NAME]
    /// [--class ID] [--top N]`.
    Show {
        what: ShowWhat,
        #[serde(default)]
        stats: bool,
        #[serde(default)]
        json: bool,
        #[serde(default)]
        tree: Option<String>,
        /// `class`: only this class (id or name) and the classes under it.
        #[serde(default)]
        class: Option<String>,
        /// `class`: only the N classes sending the most now (rate
        /// estimate), per tree, busiest first.
        #[serde(default)]
        top: Option<usize>,
    },
    /// `weir class change CLASSID [rate R] [ceil C] [burst B] [cburst B]
    /// [prio P] [quantum Q]`; values in tc units, as in the config file.
    ClassChange {
        #[serde(default)]
        tree: Option<String>,
        class: String,
        #[serde(default)]
        rate: Option<String>,
        #[serde(default)]
        ceil: Option<String>,
        #[serde(default)]
        burst: Option<String>,
        #[serde(default)]
        cburst: Option<String>,
        #[serde(default)]
        prio: Option<u8>,
        #[serde(default)]
        quantum: Option<String>,
    },
    /// `weir show flows [--tree T] [--app A] [--top N] [--by rate|bytes]
    /// [-j]`: the top flows of each tree with apps (or of `tree`).
    Flows {
        #[serde(default)]
        tree: Option<String>,
        #[serde(default)]
        app: Option<String>,
        #[serde(default = "default_top")]
        top: usize,
        #[serde(default)]
        by: FlowsBy,
        #[serde(default)]
        json: bool,
    },
    /// `weir reload` (SIGHUP does the same).
    Reload,
    /// `weir circuit add|change|del ID …`: one circuit of `[subscribers]`
    /// added, changed or removed in the running configuration (not in its
    /// files: a reload reads them again).
    Circuit(CircuitRequest),
    /// `weir whois ADDRESS [-j]`: the circuit of `[subscribers]` that
    /// holds the address, and its class, rates and counters in each
    /// direction.
    Whois {
        address: String,
        #[serde(default)]
        json: bool,
    },
    /// The full stats object (`weir run --json`'s schema), for `weir top`
    /// and scripts.
    Stats,
}

/// `weir circuit`'s request. Rates are Mbps, decimals allowed, as in
/// ShapedDevices.csv; for `add`, a min left out is the max.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CircuitRequest {
    pub action: CircuitAction,
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub parent: Option<String>,
    #[serde(default)]
    pub download_min: Option<String>,
    #[serde(default)]
    pub download_max: Option<String>,
    #[serde(default)]
    pub upload_min: Option<String>,
    #[serde(default)]
    pub upload_max: Option<String>,
    /// Addresses or prefixes of the new circuit's device (add only).
    #[serde(default)]
    pub ipv4: Vec<String>,
    #[serde(default)]
    pub ipv6: Vec<String>,
}

/// What `weir circuit` does to a circuit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CircuitAction {
    #[default]
    Add,
    Change,
    Del,
}

impl CircuitAction {
    pub fn name(self) -> &'static str {
        match self {
            CircuitAction::Add => "add",
            CircuitAction::Change => "change",
            CircuitAction::Del => "del",
        }
    }
}

/// One answer: `ok` with a text and/or JSON body, or an error message that
/// says what was wrong and what was expected.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<serde_json::Value>,
}

impl Response {
    pub fn text(text: String) -> Response {
        Response {
            ok: true,
            error: None,
            text: Some(text),
            json: None,
        }
    }

    pub fn json(json: serde_json::Value) -> Response {
        Response {
            ok: true,
            error: None,
            text: None,
            json: Some(json),
        }
    }

    pub fn error(msg: impl Into<String>) -> Response {
        Response {
            ok: false,
            error: Some(msg.into()),
            text: None,
            json: None,
        }
    }
}

/// Why a client request failed before getting an answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("can't connect to {path}: {source}; is `weir run` running (and with --socket {path})? Root only by default")]
    Connect {
        path: String,
        source: std::io::Error,
    },
    #[error("talking to {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} answered something that is not a weir response: {why}")]
    Protocol { path: String, why: String },
}

/// Send one request and wait (at most `timeout`) for its answer.
pub fn request(path: &Path, req: &Request, timeout: Duration) -> Result<Response, ClientError> {
    let shown = path.display().to_string();
    let io = |source| ClientError::Io {
        path: shown.clone(),
        source,
    };
    let mut stream = UnixStream::connect(path).map_err(|source| ClientError::Connect {
        path: shown.clone(),
        source,
    })?;
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    let mut line = serde_json::to_string(req).map_err(|e| ClientError::Protocol {
        path: shown.clone(),
        why: e.to_string(),
    })?;
    line.push('\n');
    stream.write_all(line.as_bytes()).map_err(io)?;
    let mut answer = String::new();
    BufReader::new(&stream).read_line(&mut answer).map_err(io)?;
    serde_json::from_str(&answer).map_err(|e| ClientError::Protocol {
        path: shown,
        why: e.to_string(),
    })
}

#[cfg(test)]
mod circuit_tests {
    use super::*;

    /// The request line a script sends for `weir circuit`.
    #[test]
    fn a_circuit_request_line_decodes() {
        let r: Request = serde_json::from_str(
            r#"{"cmd":"circuit","action":"add","id":"42","download_max":"100","ipv4":["198.18.1.9"]}"#,
        )
        .expect("decodes");
        let Request::Circuit(c) = &r else {
            panic!("{r:?}")
        };
        assert_eq!((c.action, c.id.as_str()), (CircuitAction::Add, "42"));
        assert_eq!(c.download_max.as_deref(), Some("100"));
        let line = serde_json::to_string(&r).expect("encodes");
        assert_eq!(serde_json::from_str::<Request>(&line).expect("again"), r);
        assert!(serde_json::from_str::<Request>(
            r#"{"cmd":"circuit","action":"add","id":"1","colour":"x"}"#
        )
        .is_err());
    }
}
