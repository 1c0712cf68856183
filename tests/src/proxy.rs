//! A loopback HTTP proxy in front of moto that answers every n-th request with a
//! throttling error, so the AWS products' retries are exercised against the real SDK
//! error path. Each request goes upstream on a fresh connection (`Connection: close`),
//! so responses need no parsing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A running proxy; stops when dropped.
pub struct ThrottlingProxy {
    /// The proxy's endpoint URL.
    pub url: String,
    /// Requests answered with a throttling error so far.
    pub throttled: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ThrottlingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one request (head and `Content-Length` body); `None` at end of stream.
async fn read_request(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(buf)
}

async fn serve(
    mut client: TcpStream,
    upstream: String,
    every: u64,
    count: Arc<AtomicU64>,
    throttled: Arc<AtomicU64>,
) {
    while let Some(req) = read_request(&mut client).await {
        let n = count.fetch_add(1, Ordering::SeqCst) + 1;
        let reply = if n.is_multiple_of(every) {
            throttled.fetch_add(1, Ordering::SeqCst);
            let body = br#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#;
            let mut r = format!(
                "HTTP/1.1 400 Bad Request\r\ncontent-type: application/x-amz-json-1.1\r\nx-amzn-errortype: ThrottlingException\r\ncontent-length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            r.extend_from_slice(body);
            r
        } else {
            // One upstream connection per request, closed after it: read to the end.
            let Ok(mut up) = TcpStream::connect(&upstream).await else {
                return;
            };
            let at = req.windows(2).position(|w| w == b"\r\n").unwrap_or(0);
            let mut fwd = req[..at].to_vec();
            fwd.extend_from_slice(b"\r\nconnection: close");
            fwd.extend_from_slice(&req[at..]);
            if up.write_all(&fwd).await.is_err() {
                return;
            }
            let mut resp = Vec::new();
            if up.read_to_end(&mut resp).await.is_err() {
                return;
            }
            resp
        };
        if client.write_all(&reply).await.is_err() {
            return;
        }
    }
}

/// Starts a proxy to `upstream` (`http://host:port`) throttling every `every`-th request.
pub async fn throttling_proxy(upstream: &str, every: u64) -> ThrottlingProxy {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let upstream = upstream
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let count = Arc::new(AtomicU64::new(0));
    let throttled = Arc::new(AtomicU64::new(0));
    let t = throttled.clone();
    let task = tokio::spawn(async move {
        while let Ok((c, _)) = listener.accept().await {
            tokio::spawn(serve(c, upstream.clone(), every, count.clone(), t.clone()));
        }
    });
    ThrottlingProxy {
        url,
        throttled,
        task,
    }
}
