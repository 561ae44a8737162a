//! The browser pool: a clear error without Chromium, a fresh browser after its share of
//! contexts, and after a crash.

use crate::kit::*;
use cartwright_engine::browser::{BrowserPool, HEADLESS_SHELL, PoolConfig};
use cartwright_engine::ratelimit::RateLimiter;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

fn pool_with(adjust: impl FnOnce(&mut PoolConfig)) -> BrowserPool {
    let mut config = PoolConfig::default();
    adjust(&mut config);
    BrowserPool::new(config, Arc::new(RateLimiter::new()))
}

/// Opens a signed-in session, loads the account's orders page and closes it.
async fn one_run(pool: &BrowserPool, shop: &cartwright_demo_shop::RunningShop, customer: u32) {
    let session = signed_in(pool, shop, customer).await;
    session
        .goto(
            &format!("{}/profile/orders", shop.url()),
            Duration::from_secs(15),
        )
        .await
        .unwrap_or_else(|e| panic!("run {customer}: {e}"));
    session.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_chromium_is_named_with_the_package_to_install() {
    let pool = pool_with(|c| c.executable = Some("/nowhere/chromium".into()));
    let err = pool
        .session(options(Vec::new()))
        .await
        .err()
        .expect("no browser to start");
    let text = err.to_string();
    assert!(text.contains("/nowhere/chromium"), "{text}");
    assert!(
        text.contains("apt-get install chromium-headless-shell"),
        "{text}"
    );
    assert_eq!(pool.launches(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_headless_shell_is_preferred_and_the_full_browser_works_too() {
    // Debian's headless shell (installed by scripts/setup) is the default: the binary, not
    // the script in /usr/bin that would keep running beside it.
    assert_eq!(pool().executable().unwrap(), Path::new(HEADLESS_SHELL));
    let script = pool_with(|c| c.executable = Some("/usr/bin/chromium-headless-shell".into()));
    assert_eq!(script.executable().unwrap(), Path::new(HEADLESS_SHELL));

    let shop = shop(|_| {}).await;
    let binaries = || -> Vec<PathBuf> {
        our_chromium_binaries()
            .into_iter()
            .map(|(_, exe)| exe)
            .collect()
    };
    let shell = pool();
    one_run(&shell, &shop, 1).await;
    assert_eq!(
        binaries(),
        [Path::new(HEADLESS_SHELL)],
        "the headless shell runs"
    );
    shell.shutdown().await;
    wait_until(
        "the headless shell to stop",
        Duration::from_secs(30),
        async || our_chromium().is_empty(),
    )
    .await;

    // The full browser, in its new headless mode, runs the same session (Debian's script
    // in /usr/bin becomes the browser).
    let full = pool_with(|c| c.executable = Some("/usr/bin/chromium".into()));
    one_run(&full, &shop, 2).await;
    assert_eq!(
        binaries(),
        [Path::new("/usr/lib/chromium/chromium")],
        "the full browser runs"
    );
    assert_eq!(full.launches(), 1);
    full.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_is_replaced_after_its_share_of_contexts() {
    let shop = shop(|_| {}).await;
    let pool = pool_with(|c| c.recycle_after = 3);
    for customer in 1..=7 {
        one_run(&pool, &shop, customer).await;
    }
    // Contexts opened ahead count towards a browser's share: at least three browsers for
    // seven runs of at most three contexts each.
    assert!(pool.launches() >= 3, "{} launches", pool.launches());
    pool.shutdown().await;
    assert_eq!(pool.open_contexts(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_browser_quits_even_when_a_wrapper_started_it() {
    use std::os::unix::fs::PermissionsExt;
    // A wrapper that runs the browser as its child instead of becoming it, and notes the
    // browser's pid: killing the wrapper would leave the browser running.
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let wrapper = dir.path().join("chromium-headless-shell-wrapper");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n{HEADLESS_SHELL} \"$@\" &\necho $! >> '{}'\nwait\n",
            pids.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let browsers = || -> Vec<u32> {
        std::fs::read_to_string(&pids)
            .unwrap_or_default()
            .lines()
            .map(|l| l.trim().parse().unwrap())
            .collect()
    };

    let shop = shop(|_| {}).await;
    let pool = pool_with(|c| {
        c.executable = Some(wrapper.clone());
        c.recycle_after = 1;
    });
    one_run(&pool, &shop, 1).await;
    // The second run gets a new browser; the first has no context left and is closed.
    one_run(&pool, &shop, 2).await;
    assert_eq!(pool.launches(), 2);
    wait_until(
        "the wrapper to note both",
        Duration::from_secs(10),
        async || browsers().len() == 2,
    )
    .await;
    let started = browsers();
    wait_until(
        "the replaced browser to quit",
        Duration::from_secs(30),
        async || !running(started[0]),
    )
    .await;
    assert!(running(started[1]), "the current browser runs on");
    pool.shutdown().await;
    assert!(
        !running(started[1]),
        "the pool's shutdown waits for its browser to quit"
    );

    // A shutdown while a run still has its context waits for the run to let it go, and then
    // for the browser to quit.
    let pool = Arc::new(pool_with(|c| c.executable = Some(wrapper.clone())));
    let session = signed_in(&pool, &shop, 3).await;
    let shutdown = tokio::spawn({
        let pool = pool.clone();
        async move { pool.shutdown().await }
    });
    wait_until(
        "the spare contexts to close",
        Duration::from_secs(10),
        async || pool.open_contexts() == 1,
    )
    .await;
    assert!(!shutdown.is_finished(), "the shutdown waits for the run");
    session.close().await;
    shutdown.await.unwrap();
    let started = browsers();
    assert_eq!(started.len(), 3, "{started:?}");
    assert!(
        !running(started[2]),
        "the browser quit before the shutdown returned"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_browser_is_replaced_for_the_next_run() {
    let shop = shop(|_| {}).await;
    let pool = pool();
    one_run(&pool, &shop, 1).await;
    assert_eq!(pool.launches(), 1);
    let browsers = our_chromium();
    assert_eq!(browsers.len(), 1, "one Chromium: {browsers:?}");
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &browsers[0].to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    // The next run finds the browser gone and starts another. A context taken in the moment
    // before the pool hears of the crash fails, as a run under way would: one more try.
    let mut attempts = 0;
    loop {
        attempts += 1;
        let session = pool.session(options(vec![session_cookie(&shop, 2)])).await;
        let loaded = match session {
            Ok(s) => {
                let r = s
                    .goto(
                        &format!("{}/profile/orders", shop.url()),
                        Duration::from_secs(15),
                    )
                    .await;
                s.close().await;
                r.is_ok()
            }
            Err(_) => false,
        };
        if loaded {
            break;
        }
        assert!(attempts < 3, "no working browser after the crash");
    }
    assert_eq!(pool.launches(), 2);
    pool.shutdown().await;
}

/// Waits until the pool has finished opening contexts ahead of need.
async fn spares_opened(pool: &BrowserPool) {
    wait_until(
        "contexts opened ahead",
        Duration::from_secs(30),
        async || !pool.opening_ahead(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contexts_are_opened_ahead_only_within_the_pools_limit() {
    let shop = shop(|_| {}).await;
    // Room to spare: a run's context and two opened ahead.
    let roomy = pool();
    let first = signed_in(&roomy, &shop, 1).await;
    spares_opened(&roomy).await;
    assert_eq!(roomy.open_contexts(), 3);
    first.close().await;
    roomy.shutdown().await;

    // Two at most: one opened ahead, taken by the next run, and none after it.
    let tight = pool_with(|c| c.max_contexts = Some(2));
    let first = signed_in(&tight, &shop, 1).await;
    spares_opened(&tight).await;
    assert_eq!(tight.open_contexts(), 2);
    let second = signed_in(&tight, &shop, 2).await;
    spares_opened(&tight).await;
    assert_eq!(tight.open_contexts(), 2);
    assert_eq!(tight.launches(), 1);
    first.close().await;
    second.close().await;
    tight.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_get_nothing_from_internal_addresses_unless_allowed() {
    let shop = shop(|_| {}).await;
    let blocking = pool_with(|c| c.block_internal = true);
    let session = blocking.session(options(Vec::new())).await.unwrap();
    let refused = session
        .goto(&format!("{}/", shop.url()), Duration::from_secs(15))
        .await;
    let refused = refused
        .expect_err("the demo shop is on 127.0.0.1")
        .to_string();
    assert!(refused.contains("ADDRESS_UNREACHABLE"), "{refused}");
    session.close().await;
    let open = pool_with(|c| c.block_internal = false);
    let session = open.session(options(Vec::new())).await.unwrap();
    session
        .goto(&format!("{}/", shop.url()), Duration::from_secs(15))
        .await
        .unwrap();
    session.close().await;
    blocking.shutdown().await;
    open.shutdown().await;
}

/// The inodes of the TCP sockets listening on this machine.
fn listening_sockets() -> std::collections::BTreeSet<String> {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .flat_map(|table| {
            table
                .lines()
                .skip(1)
                .filter_map(|line| {
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    (fields.get(3) == Some(&"0A"))
                        .then(|| fields.get(9).map(|i| (*i).to_owned()))?
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The inodes of the sockets process `pid` holds.
fn sockets_of(pid: u32) -> std::collections::BTreeSet<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|fds| {
            fds.filter_map(|fd| {
                let link = std::fs::read_link(fd.ok()?.path()).ok()?;
                let link = link.to_str()?;
                Some(link.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
            })
            .collect()
        })
        .unwrap_or_default()
}

/// Chromium speaks DevTools over a pipe: no process of the browser listens on a port that
/// another local user could attach to and read every context's cookies through. It runs
/// with its sandbox where the machine allows one (not as root, as here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devtools_goes_over_a_pipe_and_the_browser_listens_on_no_port() {
    let shop = shop(|_| {}).await;
    let pool = pool();
    one_run(&pool, &shop, 1).await;
    let session = pool.session(options(Vec::new())).await.unwrap();
    let browsers = our_chromium();
    assert_eq!(browsers.len(), 1, "one browser");
    let browser = browsers[0];
    let cmdline = std::fs::read(format!("/proc/{browser}/cmdline")).unwrap();
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    assert!(
        args.iter().any(|a| a == "--remote-debugging-pipe"),
        "{args:?}"
    );
    assert!(
        !args
            .iter()
            .any(|a| a.starts_with("--remote-debugging-port")),
        "{args:?}"
    );
    assert_eq!(
        args.iter().any(|a| a == "--no-sandbox"),
        cartwright_engine::browser::sandbox_unavailable().is_some(),
        "{args:?}"
    );
    // The browser and every process it started.
    let mut tree = vec![browser];
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let parent = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if parent == Some(browser) {
            tree.push(pid);
        }
    }
    assert!(tree.len() > 1, "the browser has its helper processes");
    let listening = listening_sockets();
    for pid in tree {
        let open: Vec<_> = sockets_of(pid).intersection(&listening).cloned().collect();
        assert!(open.is_empty(), "process {pid} listens on {open:?}");
    }
    session.close().await;
    pool.shutdown().await;
}
