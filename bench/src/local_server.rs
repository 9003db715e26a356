//! A jobcast-local process for the benchmarks: started on a free port, stopped by its PID.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result};

/// A jobcast-local process, stopped by its PID when dropped.
pub struct Server {
    /// The process.
    pub child: Child,
    /// `host:port` it listens on.
    pub address: String,
}

impl Server {
    /// Starts `binary` on a free port with `extra` arguments, and waits for its banner.
    #[allow(dead_code)]
    pub fn start(binary: &str, extra: &[&str]) -> Result<Server> {
        Self::start_with_env(binary, extra, &[])
    }

    /// [`Server::start`] with these environment variables set.
    #[allow(dead_code)]
    pub fn start_with_env(binary: &str, extra: &[&str], env: &[(&str, String)]) -> Result<Server> {
        let mut child = Command::new(binary)
            .args(["--port", "0", "--idle-timeout-secs", "7200"])
            .args(extra)
            .env("RUST_LOG", "warn")
            .envs(env.iter().map(|(name, value)| (*name, value.as_str())))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {binary}"))?;
        let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
        let banner = lines.next().context("no banner")??;
        let address = banner
            .strip_prefix("jobcast-local listening on ws://")
            .with_context(|| format!("unexpected banner: {banner}"))?
            .to_owned();
        std::thread::spawn(move || for _ in lines {});
        Ok(Server { child, address })
    }

    /// Its HTTP base URL.
    pub fn http(&self) -> String {
        format!("http://{}", self.address)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
