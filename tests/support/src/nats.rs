//! A NATS JetStream cluster of real `nats-server` processes on free loopback ports, each
//! with its own store directory in a temporary folder; killed when dropped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `nats-server` binary, or None (with a notice) when it is not installed and
/// `BELLWETHER_REQUIRE_TOOLS` is unset; with it set, a missing server is an error.
pub fn nats_server_or_skip() -> Result<Option<PathBuf>, String> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("nats-server"))
            .find(|path| path.is_file())
    });
    match found {
        Some(path) => Ok(Some(path)),
        None if std::env::var_os("BELLWETHER_REQUIRE_TOOLS").is_some_and(|v| v == "1") => {
            Err("nats-server is required (BELLWETHER_REQUIRE_TOOLS=1) but not on PATH; install the Debian package nats-server".into())
        }
        None => {
            eprintln!("\n!!!!!!!! SKIPPED: nats-server not found on PATH; install the Debian package nats-server to run this test !!!!!!!!\n");
            Ok(None)
        }
    }
}

struct Server {
    child: Option<Child>,
    args: Vec<String>,
    client_port: u16,
}

pub struct NatsCluster {
    binary: PathBuf,
    servers: Vec<Server>,
    _dir: tempfile::TempDir,
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

impl NatsCluster {
    /// Starts `n` servers routed to each other, JetStream on, and waits until each
    /// accepts connections.
    pub fn start(binary: &Path, n: usize) -> Result<Self, String> {
        Self::start_with(binary, n, &[])
    }

    /// [`NatsCluster::start`] with `extra` arguments for every server (for example
    /// `--no_advertise`, so that a client knows only the servers it was given and is cut
    /// off when they are gone).
    pub fn start_with(binary: &Path, n: usize, extra: &[&str]) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut ports = Vec::new();
        for _ in 0..n {
            ports.push((free_port()?, free_port()?));
        }
        let routes: Vec<String> = ports
            .iter()
            .map(|(_, cluster)| format!("nats://127.0.0.1:{cluster}"))
            .collect();
        let mut servers = Vec::new();
        for (i, (client, cluster)) in ports.iter().enumerate() {
            let store = dir.path().join(format!("n{i}"));
            let mut args: Vec<String> = vec![
                "-a".into(),
                "127.0.0.1".into(),
                "-p".into(),
                client.to_string(),
                "-js".into(),
                "-sd".into(),
                store.display().to_string(),
                "--server_name".into(),
                format!("n{i}"),
                "--cluster_name".into(),
                "bellwether-test".into(),
                "-cluster".into(),
                format!("nats://127.0.0.1:{cluster}"),
                "--routes".into(),
                routes.join(","),
            ];
            args.extend(extra.iter().map(|a| (*a).to_owned()));
            servers.push(Server {
                child: None,
                args,
                client_port: *client,
            });
        }
        let mut cluster = Self {
            binary: binary.to_owned(),
            servers,
            _dir: dir,
        };
        for i in 0..n {
            cluster.spawn(i)?;
        }
        for i in 0..n {
            cluster.wait_listening(i)?;
        }
        Ok(cluster)
    }

    fn spawn(&mut self, i: usize) -> Result<(), String> {
        let server = &mut self.servers[i];
        let child = Command::new(&self.binary)
            .args(&server.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting nats-server: {e}"))?;
        server.child = Some(child);
        Ok(())
    }

    fn wait_listening(&self, i: usize) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(15);
        let addr = format!("127.0.0.1:{}", self.servers[i].client_port);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(&addr).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!("nats-server n{i} did not listen on {addr}"))
    }

    /// Every server's client URL.
    pub fn urls(&self) -> Vec<String> {
        self.servers
            .iter()
            .map(|s| format!("nats://127.0.0.1:{}", s.client_port))
            .collect()
    }

    /// `kill -9` of server `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.servers[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..self.servers.len() {
            self.kill(i);
        }
    }
}
