//! A minimal SMTP server for the tests that need a job to take time: it waits `delay` before
//! its greeting, then speaks enough SMTP (RFC 5321) for lettre to deliver. With a very long
//! delay it is a black hole, which keeps a worker busy until it is killed.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::TcpListener,
};

/// A running slow SMTP server.
pub struct SlowSmtp {
    /// `smtp://127.0.0.1:<port>`, for `SMTP_URL`.
    pub url: String,
    /// Raw messages received so far.
    pub received: Arc<Mutex<Vec<String>>>,
}

impl SlowSmtp {
    /// Listens on a free loopback port.
    pub async fn start(delay: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("smtp://{}", listener.local_addr().unwrap());
        let received = Arc::new(Mutex::new(Vec::new()));
        let store = received.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let store = store.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = serve(socket, store).await;
                });
            }
        });
        Self { url, received }
    }
}

async fn serve(
    socket: tokio::net::TcpStream,
    store: Arc<Mutex<Vec<String>>>,
) -> std::io::Result<()> {
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read).lines();
    write.write_all(b"220 slow.test ESMTP\r\n").await?;
    while let Some(line) = lines.next_line().await? {
        let verb = line
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" | "HELO" => write.write_all(b"250 slow.test\r\n").await?,
            "MAIL" | "RCPT" | "RSET" | "NOOP" => write.write_all(b"250 OK\r\n").await?,
            "DATA" => {
                write.write_all(b"354 go ahead\r\n").await?;
                let mut message = String::new();
                while let Some(line) = lines.next_line().await? {
                    if line == "." {
                        break;
                    }
                    message.push_str(&line);
                    message.push('\n');
                }
                store.lock().unwrap().push(message);
                write.write_all(b"250 queued\r\n").await?;
            }
            "QUIT" => {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            _ => write.write_all(b"502 not implemented\r\n").await?,
        }
    }
    Ok(())
}
