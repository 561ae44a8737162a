//! The `cartwright` binary itself: configuration errors, creating an admin from standard
//! input, serving, and a clean stop on SIGTERM.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

fn cartwright(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cartwright"));
    cmd.current_dir(dir)
        .env_remove("CARTWRIGHT_DATABASE_URL")
        .env("CARTWRIGHT_DATA_DIR", dir.join("data"));
    cmd
}

#[test]
fn a_bad_setting_stops_the_start_and_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = cartwright(dir.path())
        .env("CARTWRIGHT_LISTEN", "nowhere")
        .arg("serve")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("listen") && err.contains("CARTWRIGHT_LISTEN"),
        "{err}"
    );

    std::fs::write(
        dir.path().join("cartwright.toml"),
        "token_ttl = \"a fortnight\"\n",
    )
    .unwrap();
    let out = cartwright(dir.path()).arg("serve").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("token_ttl") && err.contains("cartwright.toml"),
        "{err}"
    );
}

#[tokio::test]
async fn admin_from_stdin_then_serve_then_stop_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut create = cartwright(dir.path())
        .args([
            "admin",
            "create",
            "--username",
            "boss",
            "--email",
            "boss@example.com",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    create
        .stdin
        .take()
        .unwrap()
        .write_all(b"a long password\n")
        .unwrap();
    let out = create.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("created admin boss"));

    // A password that is too short is refused before anything is written.
    let mut weak = cartwright(dir.path())
        .args(["admin", "create", "--username", "weak"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    weak.stdin.take().unwrap().write_all(b"short\n").unwrap();
    let out = weak.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("password"));

    let mut server = cartwright(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = server.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut addr = None;
    let mut json_lines = 0;
    while addr.is_none() {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("server prints its address");
        json_lines += usize::from(line.starts_with('{'));
        addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_owned);
    }
    assert!(json_lines > 0, "--log-format json logs JSON lines");
    let addr = addr.unwrap();
    let login = reqwest::Client::new()
        .post(format!("http://{addr}/api/v1/auth/login"))
        .json(&serde_json::json!({"username": "boss", "password": "a long password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    use std::os::unix::fs::PermissionsExt;
    let mode = dir
        .path()
        .join("data/secret.key")
        .metadata()
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the key file is private");

    let pid = server.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = server.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "server stops on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "a clean exit on SIGTERM: {status:?}");
}
