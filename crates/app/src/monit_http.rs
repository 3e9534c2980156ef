//! Reading Monit's status over its HTTP interface, on TCP or on its unix socket.
//!
//! One fixed request (`GET /_status?format=xml`, HTTP/1.0, basic auth) to a local daemon. ureq has
//! no unix-socket transport, so this small client serves both, with a timeout on every step.
//! The password is read from a file or an environment variable, never from argv, and never
//! appears in an error.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use statusrelay_core::config::MonitConfig;

use crate::AppError;

const PATH: &str = "/_status?format=xml";
/// Monit's status of a few hundred services is tens of KiB; refuse anything absurd.
const MAX_BODY: u64 = 16 * 1024 * 1024;

use statusrelay_backend::http::base64;

fn password(m: &MonitConfig) -> Result<Option<String>, AppError> {
    let read = match (&m.password_file, &m.password_env) {
        (Some(p), _) => statusrelay_core::fsutil::read_regular(p)
            .map_err(|e| {
                AppError::Monit(format!(
                    "cannot read monit.password_file {}: {e}",
                    p.display()
                ))
            })?
            .lines()
            .next()
            .unwrap_or("")
            .to_string(),
        (None, Some(v)) => std::env::var(v)
            .map_err(|_| AppError::Monit(format!("monit.password_env: {v} is not set")))?,
        (None, None) => return Ok(None),
    };
    Ok(Some(read))
}

/// A socket timeout reads "Resource temporarily unavailable (os error 11)": say what it is.
fn io_words(doing: &str, e: &std::io::Error) -> AppError {
    if matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    ) {
        AppError::Monit(format!(
            "{doing}: Monit did not answer within monit.timeout (is it stopped, or busy with a slow check? raise [monit] timeout if it is just slow)"
        ))
    } else {
        AppError::Monit(format!("{doing}: {e}"))
    }
}

fn exchange<S: Read + Write>(mut s: S, request: &str) -> Result<Vec<u8>, AppError> {
    s.write_all(request.as_bytes())
        .map_err(|e| io_words("sending the request", &e))?;
    let mut raw = Vec::new();
    s.take(MAX_BODY)
        .read_to_end(&mut raw)
        .map_err(|e| io_words("reading the answer", &e))?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| AppError::Monit("the answer has no HTTP header".into()))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    match status {
        200 => Ok(raw[split + 4..].to_vec()),
        401 | 403 => Err(AppError::Monit(format!(
            "Monit refused the credentials (HTTP {status}): set [monit] user and password_file to an `allow user:password` of the monitrc"
        ))),
        0 => Err(AppError::Monit("the answer is not HTTP".into())),
        other => Err(AppError::Monit(format!("Monit answered HTTP {other}"))),
    }
}

/// Fetch Monit's status document (raw bytes, as served).
pub fn fetch_status(m: &MonitConfig) -> Result<Vec<u8>, AppError> {
    let mut req = format!(
        "GET {PATH} HTTP/1.0\r\nHost: localhost\r\nUser-Agent: statusrelay/{}\r\n",
        env!("CARGO_PKG_VERSION")
    );
    if let Some(user) = &m.user {
        let pw = password(m)?.unwrap_or_default();
        req.push_str(&format!(
            "Authorization: Basic {}\r\n",
            base64(format!("{user}:{pw}").as_bytes())
        ));
    }
    req.push_str("\r\n");
    let t = Some(m.timeout);
    if let Some(sock) = &m.socket {
        let s = UnixStream::connect(sock).map_err(|e| {
            AppError::Monit(format!(
                "cannot connect to Monit's socket {}: {e}",
                sock.display()
            ))
        })?;
        s.set_read_timeout(t)
            .and_then(|_| s.set_write_timeout(t))
            .map_err(|e| AppError::Monit(e.to_string()))?;
        return exchange(s, &req);
    }
    let url = m.url.as_deref().unwrap_or("http://127.0.0.1:2812");
    let hostport = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or("");
    let hostport = if hostport.contains(':') {
        hostport.to_string()
    } else {
        format!("{hostport}:80")
    };
    let addr = hostport
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| AppError::Monit(format!("cannot resolve {hostport} from monit.url")))?;
    let s = TcpStream::connect_timeout(&addr, m.timeout.max(Duration::from_millis(100))).map_err(
        |e| {
            AppError::Monit(format!(
                "cannot connect to Monit at {url}: {e} (is `set httpd` enabled in the monitrc?)"
            ))
        },
    )?;
    s.set_read_timeout(t)
        .and_then(|_| s.set_write_timeout(t))
        .map_err(|e| AppError::Monit(e.to_string()))?;
    exchange(s, &req)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }
}
