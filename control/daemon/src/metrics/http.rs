//! The HTTP listener of `weir run`: `GET /metrics` (the latest published
//! stats, encoded) and, with a token, `POST /api` (the operator API).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use super::{render, Published};

#[derive(Debug, thiserror::Error)]
#[error(
    "can't serve metrics on {addr}: {source}; pick another --metrics address, or --metrics none"
)]
pub struct ServeError {
    addr: String,
    source: std::io::Error,
}

/// Mutating calls over HTTP: off unless the operator configures a token
/// (`weir run --http-token-file`). Then `POST /api` with `Authorization:
/// Bearer TOKEN` takes the same JSON request as the unix socket.
pub struct HttpApi {
    pub token: String,
    pub forward: Box<dyn Fn(weir_api::Pending) -> bool + Send + Sync>,
}

/// The shortest token accepted: guessing one must not be practical.
pub const MIN_TOKEN_LEN: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("can't read the HTTP token file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the HTTP token file {path} can be read by group or others (mode {mode:o}); expected mode 0600 or 0400 (chmod 600 {path})")]
    Mode { path: String, mode: u32 },
    #[error("the HTTP token in {path} is {len} characters; expected at least {MIN_TOKEN_LEN} (e.g. `openssl rand -hex 32 > {path}`)")]
    Short { path: String, len: usize },
}

/// Read the token: the file's first line, trimmed. The file must be
/// private, as any secret.
pub fn read_token(path: &std::path::Path) -> Result<String, TokenError> {
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|source| TokenError::Read {
        path: shown.clone(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(TokenError::Mode { path: shown, mode });
    }
    let text = std::fs::read_to_string(path).map_err(|source| TokenError::Read {
        path: shown.clone(),
        source,
    })?;
    let token = text.lines().next().unwrap_or("").trim().to_string();
    if token.len() < MIN_TOKEN_LEN {
        return Err(TokenError::Short {
            path: shown,
            len: token.len(),
        });
    }
    Ok(token)
}

/// Serve `GET /metrics` (and, with `api`, `POST /api`) on `addr` from a
/// thread of its own.
pub fn serve(
    addr: SocketAddr,
    published: Published,
    api: Option<HttpApi>,
) -> Result<SocketAddr, ServeError> {
    let listener = TcpListener::bind(addr).map_err(|source| ServeError {
        addr: addr.to_string(),
        source,
    })?;
    let bound = listener.local_addr().unwrap_or(addr);
    std::thread::Builder::new()
        .name("weir-metrics".into())
        .spawn(move || {
            for conn in listener.incoming().flatten() {
                answer(conn, &published, api.as_ref());
            }
        })
        .map_err(|source| ServeError {
            addr: addr.to_string(),
            source,
        })?;
    Ok(bound)
}

/// Compare without an early exit, so the time taken says nothing about how
/// much of a guess was right.
fn same_token(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        diff |= usize::from(a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

/// One HTTP/1.1 request, one response, connection closed. Requests are
/// read from the one listener thread, so a slow client is bounded by the
/// 5 s timeouts.
fn answer(mut conn: TcpStream, published: &Published, api: Option<&HttpApi>) {
    use std::io::Read;
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = conn.set_write_timeout(Some(Duration::from_secs(5)));
    let mut request_line = String::new();
    let mut authorization = None;
    let mut content_length = 0usize;
    let mut body = Vec::new();
    {
        let mut reader = BufReader::new(&conn);
        if reader.read_line(&mut request_line).is_err() {
            return;
        }
        let mut line = String::new();
        for _ in 0..100 {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) if line == "\r\n" || line == "\n" => break,
                Ok(_) => {
                    if let Some((name, value)) = line.split_once(':') {
                        let value = value.trim().to_string();
                        match name.trim().to_ascii_lowercase().as_str() {
                            "authorization" => authorization = Some(value),
                            "content-length" => {
                                content_length = value.parse().unwrap_or(usize::MAX)
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
        let mut parts = request_line.split_whitespace();
        if parts.next() == Some("POST") && content_length <= weir_api::MAX_REQUEST {
            body.resize(content_length, 0);
            if reader.read_exact(&mut body).is_err() {
                body.clear();
            }
        }
    }
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let text = |status: &'static str, msg: &str| (status, "text/plain", msg.to_string());
    let (status, ctype, body) = match (method, path) {
        ("GET", p) if p == "/metrics" || p.starts_with("/metrics?") => (
            "200 OK",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            render(published),
        ),
        ("POST", "/api") => match api {
            None => text(
                "403 Forbidden",
                "mutating calls over HTTP are off; use the unix socket (weir class change …), or start weir run with --http-token-file\n",
            ),
            Some(api) => {
                let given = authorization
                    .as_deref()
                    .and_then(|a| a.strip_prefix("Bearer "))
                    .map(str::trim);
                if !given.is_some_and(|g| same_token(g, &api.token)) {
                    text(
                        "401 Unauthorized",
                        "expected the header `Authorization: Bearer TOKEN` with the token of --http-token-file\n",
                    )
                } else if content_length > weir_api::MAX_REQUEST {
                    text("413 Payload Too Large", "a request is one JSON object of at most 64 KiB\n")
                } else {
                    let body = String::from_utf8_lossy(&body);
                    let response = weir_api::dispatch(&body, &*api.forward);
                    let status = if response.ok { "200 OK" } else { "400 Bad Request" };
                    let json = serde_json::to_string(&response).unwrap_or_else(|_| {
                        r#"{"ok":false,"error":"unencodable response"}"#.to_string()
                    });
                    (status, "application/json", json + "\n")
                }
            }
        },
        _ => text(
            "404 Not Found",
            "weir serves GET /metrics (and POST /api when a token is configured)\n",
        ),
    };
    let auth = if status.starts_with("401") {
        "WWW-Authenticate: Bearer realm=\"weir\"\r\n"
    } else {
        ""
    };
    let _ = write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n{auth}Connection: close\r\n\r\n{body}",
        body.len()
    );
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn serves_metrics_and_404s_the_rest() {
        use std::io::Read;
        let p = Published::default();
        p.set(Arc::new(crate::json::tests::sample_stats(1)));
        let addr = serve("127.0.0.1:0".parse().expect("addr"), p, None).expect("bind");
        let get = |path: &str| {
            let mut c = TcpStream::connect(addr).expect("connect");
            write!(c, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
            let mut s = String::new();
            c.read_to_string(&mut s).expect("read");
            s
        };
        let ok = get("/metrics");
        assert!(ok.starts_with("HTTP/1.1 200 OK"), "{ok}");
        assert!(ok.contains("application/openmetrics-text"), "{ok}");
        assert!(get("/").starts_with("HTTP/1.1 404"));
    }

    fn post(addr: SocketAddr, auth: Option<&str>, body: &str) -> String {
        use std::io::Read;
        let mut c = TcpStream::connect(addr).expect("connect");
        let auth = auth.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
        write!(
            c,
            "POST /api HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .expect("write");
        let mut s = String::new();
        c.read_to_string(&mut s).expect("read");
        s
    }

    #[test]
    fn mutating_calls_need_a_configured_token() {
        let reload = r#"{"cmd":"reload"}"#;
        // No token configured: refused whatever the client sends.
        let addr = serve(
            "127.0.0.1:0".parse().expect("addr"),
            Published::default(),
            None,
        )
        .expect("bind");
        let r = post(addr, Some("Bearer whatever-whatever-1"), reload);
        assert!(r.starts_with("HTTP/1.1 403"), "{r}");

        // With a token: only the right one gets through to the control
        // thread, which here answers every request with its cmd.
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let api = HttpApi {
            token: "0123456789abcdef-token".into(),
            forward: Box::new(move |p: weir_api::Pending| {
                log.lock().expect("lock").push(p.request.clone());
                let _ = p.reply.send(weir_api::Response::text("reloaded\n".into()));
                true
            }),
        };
        let addr = serve(
            "127.0.0.1:0".parse().expect("addr"),
            Published::default(),
            Some(api),
        )
        .expect("bind");
        for auth in [
            None,
            Some("Bearer wrong-wrong-wrong-wrong"),
            Some("Basic abc"),
            Some("Bearer 0123456789abcdef-toke"),
        ] {
            let r = post(addr, auth, reload);
            assert!(r.starts_with("HTTP/1.1 401"), "{auth:?}: {r}");
            assert!(r.contains("WWW-Authenticate: Bearer"), "{r}");
        }
        assert!(
            seen.lock().expect("lock").is_empty(),
            "nothing forwarded yet"
        );
        let r = post(addr, Some("Bearer 0123456789abcdef-token"), reload);
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        assert!(r.contains(r#""text":"reloaded\n""#), "{r}");
        let r = post(addr, Some("Bearer 0123456789abcdef-token"), "{not json");
        assert!(r.starts_with("HTTP/1.1 400"), "{r}");
        assert!(r.contains("bad request"), "{r}");
        assert_eq!(seen.lock().expect("lock").len(), 1, "only the good request");
        // GET /metrics stays open without a token.
        let mut c = TcpStream::connect(addr).expect("connect");
        write!(c, "GET /metrics HTTP/1.1\r\n\r\n").expect("write");
        let mut s = String::new();
        std::io::Read::read_to_string(&mut c, &mut s).expect("read");
        assert!(s.starts_with("HTTP/1.1 200"), "{s}");
    }

    #[test]
    fn token_files_must_be_private_and_long() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("weir-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let f = dir.join("token");
        std::fs::write(&f, "0123456789abcdef-token\n").expect("write");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(matches!(read_token(&f), Err(TokenError::Mode { .. })));
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(read_token(&f).expect("token"), "0123456789abcdef-token");
        std::fs::write(&f, "short\n").expect("write");
        assert!(matches!(read_token(&f), Err(TokenError::Short { .. })));
        assert!(matches!(
            read_token(&dir.join("missing")),
            Err(TokenError::Read { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
