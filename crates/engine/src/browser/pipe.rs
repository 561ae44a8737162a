//! Chromium's DevTools over a pipe instead of a TCP port. With `--remote-debugging-port` any
//! local user can attach to the browser and read every context's cookies; with
//! `--remote-debugging-pipe` the protocol runs over two file descriptors only this process
//! holds. chromiumoxide speaks WebSocket, so this process bridges the two: the WebSocket end
//! listens on 127.0.0.1 at a path holding 128 random bits that is never written anywhere (no
//! command line, no file, no `/json` endpoint), accepts one connection on that path — ours,
//! made at once — and stops listening.

use super::BrowserError;
use command_fds::{CommandFdExt, FdMapping};
use futures::{SinkExt, StreamExt};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::sync::{oneshot, watch};

/// A process speaking the DevTools protocol on fds 3 (in) and 4 (out), and the WebSocket
/// address that reaches it.
pub(crate) struct Piped {
    /// The process.
    pub(crate) process: Process,
    /// Where to connect, once.
    pub(crate) ws_url: String,
}

/// A started process, watched: its exit ends the bridge at once (its helper processes may
/// hold the pipe open after it died), and dropping this handle kills it.
pub(crate) struct Process {
    kill: Option<oneshot::Sender<()>>,
    exited: watch::Receiver<bool>,
}

impl Process {
    fn watch(mut child: Child) -> Self {
        let (kill, killed) = oneshot::channel::<()>();
        let (exited_tx, exited) = watch::channel(false);
        tokio::spawn(async move {
            tokio::select! {
                _ = child.wait() => {}
                // Asked to, or the handle was dropped.
                _ = killed => {
                    let _ = child.kill().await;
                }
            }
            exited_tx.send_replace(true);
        });
        Self {
            kill: Some(kill),
            exited,
        }
    }

    /// Becomes true when the process has exited.
    pub(crate) fn exited(&self) -> watch::Receiver<bool> {
        self.exited.clone()
    }

    /// Waits for the process to exit.
    pub(crate) async fn wait(&mut self) {
        let _ = self.exited.wait_for(|e| *e).await;
    }

    /// Kills the process and waits for it.
    pub(crate) async fn kill(&mut self) {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
        self.wait().await;
    }
}

/// Starts `executable` with `args` and `--remote-debugging-pipe`, and bridges its pipe to a
/// one-time WebSocket. The bridge gives up when nobody connects within `wait`.
pub(crate) async fn spawn(
    executable: &Path,
    args: &[String],
    wait: Duration,
) -> Result<Piped, BrowserError> {
    let failed = |what: &str, e: std::io::Error| BrowserError::Launch(format!("{what}: {e}"));
    let (browser_reads, we_write) = std::io::pipe().map_err(|e| failed("a pipe", e))?;
    let (we_read, browser_writes) = std::io::pipe().map_err(|e| failed("a pipe", e))?;
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| failed("listening for the DevTools bridge", e))?;
    let port = listener
        .local_addr()
        .map_err(|e| failed("the DevTools bridge's address", e))?
        .port();
    let secret: u128 = rand::random();
    let path = format!("/devtools/browser/{secret:032x}");

    let child = {
        let mut command = Command::new(executable);
        command
            .args(args)
            .arg("--remote-debugging-pipe")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true);
        command
            .fd_mappings(vec![
                FdMapping {
                    parent_fd: OwnedFd::from(browser_reads),
                    child_fd: 3,
                },
                FdMapping {
                    parent_fd: OwnedFd::from(browser_writes),
                    child_fd: 4,
                },
            ])
            .map_err(|e| BrowserError::Launch(format!("passing the DevTools pipe: {e}")))?;
        // The command owns the browser's ends: dropping it closes this process's copies, so
        // that the browser's exit is seen as the end of the pipe.
        command
            .spawn()
            .map_err(|e| failed(&format!("starting {}", executable.display()), e))?
    };
    let to_browser = tokio::net::unix::pipe::Sender::from_owned_fd(OwnedFd::from(we_write))
        .map_err(|e| failed("the DevTools pipe", e))?;
    let from_browser = tokio::net::unix::pipe::Receiver::from_owned_fd(OwnedFd::from(we_read))
        .map_err(|e| failed("the DevTools pipe", e))?;
    let process = Process::watch(child);
    tokio::spawn(bridge(
        listener,
        path.clone(),
        wait,
        (to_browser, from_browser),
        process.exited.clone(),
    ));
    Ok(Piped {
        process,
        ws_url: format!("ws://127.0.0.1:{port}{path}"),
    })
}

/// Accepts the one WebSocket on `path` (others are refused), stops listening, then relays
/// messages until either side ends: WebSocket text to the pipe with a NUL after each message,
/// the pipe's NUL-separated messages to WebSocket text.
// The handshake callback's error type is tungstenite's, an HTTP response.
#[allow(clippy::result_large_err)]
async fn bridge(
    listener: TcpListener,
    path: String,
    wait: Duration,
    (mut to_browser, mut from_browser): (
        tokio::net::unix::pipe::Sender,
        tokio::net::unix::pipe::Receiver,
    ),
    mut exited: watch::Receiver<bool>,
) {
    use async_tungstenite::tungstenite::Message;
    use async_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
    let accept = async {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            // Answers go out at once, as Chromium's own DevTools server sends them: with
            // Nagle's algorithm a small answer waits for the last one's acknowledgement.
            let _ = stream.set_nodelay(true);
            let check = |request: &Request, response: Response| {
                if request.uri().path() == path {
                    Ok(response)
                } else {
                    let mut refusal = ErrorResponse::new(Some("not this path".into()));
                    *refusal.status_mut() =
                        async_tungstenite::tungstenite::http::StatusCode::NOT_FOUND;
                    Err(refusal)
                }
            };
            if let Ok(ws) = async_tungstenite::tokio::accept_hdr_async(stream, check).await {
                return ws;
            }
            tracing::warn!("refused a connection to the DevTools bridge on a wrong path");
        }
    };
    let ws = tokio::select! {
        ws = tokio::time::timeout(wait, accept) => ws,
        () = async { drop(exited.wait_for(|e| *e).await) } => return,
    };
    let Ok(mut ws) = ws else {
        tracing::warn!("nobody connected to the DevTools bridge");
        return;
    };
    drop(listener);
    let mut buffer = vec![0u8; 64 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    loop {
        tokio::select! {
            // The browser is gone: chromiumoxide hears it from the closed WebSocket.
            () = async { drop(exited.wait_for(|e| *e).await) } => break,
            incoming = ws.next() => {
                let mut bytes = match incoming {
                    Some(Ok(Message::Text(text))) => text.as_bytes().to_vec(),
                    Some(Ok(Message::Binary(bytes))) => bytes.to_vec(),
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                };
                bytes.push(0);
                if to_browser.write_all(&bytes).await.is_err() {
                    break;
                }
            }
            read = from_browser.read(&mut buffer) => {
                let n = match read {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                pending.extend_from_slice(&buffer[..n]);
                // Every whole message read is queued, then they leave together.
                let mut queued = false;
                while let Some(end) = pending.iter().position(|b| *b == 0) {
                    let message: Vec<u8> = pending.drain(..=end).take(end).collect();
                    let Ok(text) = String::from_utf8(message) else {
                        continue;
                    };
                    if ws.feed(Message::Text(text.into())).await.is_err() {
                        return;
                    }
                    queued = true;
                }
                if queued && ws.flush().await.is_err() {
                    return;
                }
            }
        }
    }
    let _ = ws.close(None).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_tungstenite::tungstenite::Message;

    /// A stand-in for Chromium that answers every message with itself.
    async fn echo() -> Piped {
        spawn(
            Path::new("/bin/sh"),
            &["-c".into(), "cat <&3 >&4".into()],
            Duration::from_secs(30),
        )
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn the_bridge_relays_whole_messages_to_one_connection_on_its_secret_path_only() {
        let piped = echo().await;
        let url = url::Url::parse(&piped.ws_url).unwrap();
        // A guess at the path is refused and the bridge keeps listening.
        let guess = format!("ws://127.0.0.1:{}/devtools/browser/0", url.port().unwrap());
        assert!(
            async_tungstenite::tokio::connect_async(guess)
                .await
                .is_err()
        );
        let (mut ws, _) = async_tungstenite::tokio::connect_async(piped.ws_url.clone())
            .await
            .unwrap();
        for text in [
            r#"{"id":1,"method":"Browser.getVersion"}"#,
            "two",
            "ünïcödé",
        ] {
            ws.send(Message::Text(text.into())).await.unwrap();
            let back = ws.next().await.unwrap().unwrap();
            assert_eq!(back, Message::Text(text.into()));
        }
        // Once connected, nobody else can: the bridge no longer listens.
        assert!(
            async_tungstenite::tokio::connect_async(piped.ws_url.clone())
                .await
                .is_err()
        );
        drop(piped);
    }
}
