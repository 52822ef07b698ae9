//! HTTP/1.1 over a plain `TcpStream`, so the suite can send what well-behaved clients refuse to
//! (raw `..` segments, invalid UTF-8 in the target, header values with control bytes, bodies larger
//! than the route allows) and see exactly what the server answers. Every request says
//! `Connection: close`, so the answer ends where the stream does.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A request to build up: method and target are sent byte for byte.
#[derive(Clone)]
pub struct Req {
    method: String,
    target: Vec<u8>,
    /// `Host: 127.0.0.1` unless changed; `None`: no Host header at all.
    host: Option<Vec<u8>>,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

impl Req {
    pub fn new(method: &str, target: impl AsRef<[u8]>) -> Self {
        Self {
            method: method.to_owned(),
            target: target.as_ref().to_vec(),
            host: Some(b"127.0.0.1".to_vec()),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Sends `host` as the one Host header instead of `127.0.0.1` (`None`: sends none).
    pub fn host(mut self, host: Option<&str>) -> Self {
        self.host = host.map(|h| h.as_bytes().to_vec());
        self
    }

    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.headers.push((name.to_owned(), value.as_ref().to_vec()));
        self
    }

    pub fn bearer(self, key: &str) -> Self {
        self.header("Authorization", format!("Bearer {key}"))
    }

    /// `body` with `Content-Type: application/json`.
    pub fn json(self, body: impl AsRef<[u8]>) -> Self {
        self.header("Content-Type", "application/json").body(body)
    }

    pub fn body(mut self, body: impl AsRef<[u8]>) -> Self {
        self.body = body.as_ref().to_vec();
        self
    }

    /// What the request looks like in a failure message (the target, lossily, cut short).
    pub fn describe(&self) -> String {
        let target = String::from_utf8_lossy(&self.target);
        let target: String = target.chars().take(120).collect();
        format!("{} {target} ({} body bytes)", self.method, self.body.len())
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 256);
        out.extend_from_slice(self.method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(&self.target);
        out.extend_from_slice(b" HTTP/1.1\r\n");
        if let Some(host) = &self.host {
            out.extend_from_slice(b"Host: ");
            out.extend_from_slice(host);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"Connection: close\r\n");
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        if !self.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("content-length")) {
            out.extend_from_slice(format!("Content-Length: {}\r\n", self.body.len()).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

/// The server's answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// Names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The `error` string of a JSON error body.
    pub fn error(&self) -> Option<String> {
        let body: serde_json::Value = serde_json::from_str(&self.body).ok()?;
        body.get("error")?.as_str().map(str::to_owned)
    }
}

pub async fn send(addr: &str, req: &Req) -> Answer {
    send_bytes(addr, req.to_bytes()).await
}

/// Writes `bytes` as they are and reads the answer. The write runs beside the read: a server that
/// answers 413 before reading a whole body may close the connection under the writer, which is fine.
pub async fn send_bytes(addr: &str, bytes: Vec<u8>) -> Answer {
    let stream = TcpStream::connect(addr).await.expect("connect to crm serve");
    let (mut reader, mut writer) = stream.into_split();
    let writing = tokio::spawn(async move {
        let _ = writer.write_all(&bytes).await;
        let _ = writer.flush().await;
        // Keep the write half open until the server closes: shutting it down early could read as an abort.
        writer
    });
    let mut raw = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), reader.read_to_end(&mut raw)).await;
    writing.abort();
    match read {
        Ok(Ok(_)) => {}
        // A reset after a complete answer (unread request bytes) still leaves the answer readable.
        Ok(Err(e)) if !raw.is_empty() => eprintln!("connection ended with {e} after the answer"),
        Ok(Err(e)) => panic!("reading the answer: {e}"),
        Err(_) => panic!("no answer within 30 s"),
    }
    parse(&raw)
}

fn parse(raw: &[u8]) -> Answer {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or_else(|| {
        panic!("not an HTTP answer: {:?}", String::from_utf8_lossy(&raw[..raw.len().min(200)]));
    });
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        panic!("no status in {status_line:?}");
    });
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers.iter().any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let rest = &raw[end + 4..];
    let body = if chunked { dechunk(rest) } else { rest.to_vec() };
    Answer { status, headers, body: String::from_utf8_lossy(&body).into_owned() }
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&rest[..line_end]).ok().and_then(|s| usize::from_str_radix(s.trim(), 16).ok());
        let Some(size) = size.filter(|s| *s > 0) else { break };
        let start = line_end + 2;
        let stop = (start + size).min(rest.len());
        out.extend_from_slice(&rest[start..stop]);
        rest = rest.get(stop + 2..).unwrap_or_default();
    }
    out
}
