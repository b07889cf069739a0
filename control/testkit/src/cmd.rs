//! Running the tools the network tests drive (`ip`, `tc`, `ethtool`,
//! iperf3, trafgen): errors carry the command line and what it said, and
//! [`run_limited`] bounds a command in time so a hung tool cannot hang a
//! test.

use std::io;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// Runs a command to completion and returns its output whatever the exit
/// status (for commands expected to fail).
pub fn output(args: &[&str]) -> io::Result<Output> {
    let (prog, rest) = args
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?;
    Command::new(prog)
        .args(rest)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run `{prog}`: {e}")))
}

/// Runs a command to completion and returns its stdout; a non-zero exit is
/// an error that carries the command line and its stderr.
pub fn run_cmd(args: &[&str]) -> io::Result<String> {
    checked(args, output(args)?)
}

/// `out`'s stdout if `args` exited 0, else an error naming the command,
/// its status and what it printed.
pub fn checked(args: &[&str], out: Output) -> io::Result<String> {
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    Err(io::Error::other(format!(
        "`{}` failed ({}):\n{}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim_end(),
        String::from_utf8_lossy(&out.stdout).trim_end(),
    )))
}

/// The arguments that run `args` under `timeout(1)`: SIGTERM at `limit`,
/// SIGKILL 2 s later.
pub fn limited<'a>(secs: &'a str, args: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["timeout", "-k", "2", secs];
    v.extend_from_slice(args);
    v
}

/// `limit` as `timeout(1)` takes it (seconds, one decimal).
pub fn timeout_secs(limit: Duration) -> String {
    format!("{:.1}", limit.as_secs_f64())
}

/// Runs `args` to completion under `timeout(1)` (SIGTERM at `limit`,
/// SIGKILL 2 s later) and returns its output whatever the exit status.
pub fn run_limited(args: &[&str], limit: Duration) -> io::Result<Output> {
    let secs = timeout_secs(limit);
    output(&limited(&secs, args))
}

/// The arguments that run `args` inside network namespace `ns`.
pub fn in_netns<'a>(ns: &'a str, args: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["ip", "netns", "exec", ns];
    v.extend_from_slice(args);
    v
}

/// A child process killed (and reaped) on drop, so a failing test leaves
/// no iperf3 or other tool behind.
#[derive(Debug)]
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_names_the_command_and_its_stderr() {
        let e = run_cmd(&["sh", "-c", "echo oops >&2; exit 3"]).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("`sh -c echo oops >&2; exit 3` failed"),
            "{msg}"
        );
        assert!(msg.contains("oops"), "{msg}");
        assert_eq!(run_cmd(&["sh", "-c", "echo ok"]).unwrap(), "ok\n");
        assert!(run_cmd(&[]).is_err());
    }

    #[test]
    fn run_limited_stops_a_command_at_its_limit() {
        let start = std::time::Instant::now();
        let out = run_limited(&["sleep", "10"], Duration::from_millis(200)).unwrap();
        assert_eq!(out.status.code(), Some(124), "timeout(1)'s status");
        assert!(start.elapsed() < Duration::from_secs(5));
    }
}
