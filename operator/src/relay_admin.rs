//! The operator's reads of its relays' admin listeners (`listeners.adminPort`): a bounded GET
//! of a JSON document, `None` when a relay does not answer in time (it is then left out).

use serde::de::DeserializeOwned;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MAX_BODY: u64 = 4 * 1024 * 1024;

pub async fn get_json<T: DeserializeOwned>(addr: SocketAddr, path: &str) -> Option<T> {
    let get = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n\r\n").as_bytes()).await.ok()?;
        let mut out = Vec::new();
        s.take(MAX_BODY).read_to_end(&mut out).await.ok()?;
        let body = out.windows(4).position(|w| w == b"\r\n\r\n").map(|p| &out[p + 4..])?;
        out.starts_with(b"HTTP/1.1 200").then(|| serde_json::from_slice(body).ok()).flatten()
    };
    tokio::time::timeout(Duration::from_secs(3), get).await.ok().flatten()
}
