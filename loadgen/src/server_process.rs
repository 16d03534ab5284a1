//! The server under test as a separate process, so that its memory and CPU
//! are its own: started on a loopback port chosen by the kernel, found by the
//! `listening on http://ADDR` line it prints, stopped with SIGTERM (it then
//! flushes and exits) or killed when dropped.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// Lines of the server's output kept for error reports.
const KEPT_OUTPUT_LINES: usize = 40;

pub struct ServerProcess {
    child: Child,
    pub address: SocketAddr,
    output: Arc<Mutex<VecDeque<String>>>,
}

/// Memory and CPU of a process, from `/proc/PID/status` and `/proc/PID/stat`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcessUsage {
    /// Peak resident set size (VmHWM), in bytes.
    pub peak_resident_bytes: u64,
    /// Resident set size now (VmRSS), in bytes.
    pub resident_bytes: u64,
    /// User plus system CPU time so far.
    pub cpu_seconds: f64,
}

impl ServerProcess {
    /// Start `server_bin serve` on `data_dir`, bound to 127.0.0.1 on a free
    /// port, and wait until it says where it listens. Every simulated client
    /// connects from 127.0.0.1, where in the field each handheld and
    /// dashboard has an address of its own: the cap per client address is
    /// lifted to the cap in all.
    pub fn start(
        server_bin: &Path,
        data_dir: &Path,
        jwt_secret: &str,
        startup_timeout: Duration,
    ) -> Result<Self, String> {
        Self::start_with(
            server_bin,
            data_dir,
            jwt_secret,
            startup_timeout,
            &[("ESTATE_SYNC_MAX_CONNECTIONS_PER_ADDRESS", "4096")],
        )
    }

    /// [`ServerProcess::start`] with extra `ESTATE_SYNC_*` settings.
    pub fn start_with(
        server_bin: &Path,
        data_dir: &Path,
        jwt_secret: &str,
        startup_timeout: Duration,
        settings: &[(&str, &str)],
    ) -> Result<Self, String> {
        Self::start_serving(
            server_bin,
            data_dir,
            jwt_secret,
            startup_timeout,
            settings,
            &[],
        )
    }

    /// [`ServerProcess::start_with`] with extra arguments of `serve`
    /// (`--demo`).
    pub fn start_serving(
        server_bin: &Path,
        data_dir: &Path,
        jwt_secret: &str,
        startup_timeout: Duration,
        settings: &[(&str, &str)],
        serve_arguments: &[&str],
    ) -> Result<Self, String> {
        let mut child = Command::new(server_bin)
            .arg("--data-dir")
            .arg(data_dir)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(serve_arguments)
            .env("ESTATE_SYNC_JWT_SECRET", jwt_secret)
            // Info level, as in production: the benchmark pays for what
            // operators would run with.
            .env("RUST_LOG", "info")
            .envs(settings.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|error| format!("cannot start {}: {error}", server_bin.display()))?;
        let output = Arc::new(Mutex::new(VecDeque::new()));
        let (address_sender, address_receiver) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        drain(stdout, output.clone(), Some(address_sender));
        drain(stderr, output.clone(), None);

        let mut server = Self {
            child,
            // Replaced below once the server has said where it listens.
            address: SocketAddr::from(([127, 0, 0, 1], 0)),
            output,
        };
        match address_receiver.recv_timeout(startup_timeout) {
            Ok(address) => {
                server.address = address;
                Ok(server)
            }
            Err(_) => Err(format!(
                "the server did not report its address within {} s; its last output:\n{}",
                startup_timeout.as_secs(),
                server.last_output()
            )),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn usage(&self) -> Result<ProcessUsage, String> {
        process_usage(self.pid())
    }

    /// The server's last lines of output, for error reports.
    pub fn last_output(&self) -> String {
        let lines = self.output.lock().expect("output lock");
        lines.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// Stop the server after a run that `measured` it, with its usage read
    /// while it still runs, whatever the run said. A failed run's error
    /// comes back with the server's last output (the server is then killed
    /// when dropped).
    pub fn finish<T>(
        self,
        measured: Result<T, String>,
        timeout: Duration,
    ) -> Result<(T, ProcessUsage), String> {
        let usage = self.usage();
        let measured = measured.map_err(|error| {
            format!("{error}\nthe server's last output:\n{}", self.last_output())
        })?;
        let usage = usage?;
        self.stop(timeout)?;
        Ok((measured, usage))
    }

    /// SIGTERM, then wait for the graceful shutdown (final flush); kill it
    /// if it takes longer than `timeout`.
    pub fn stop(mut self, timeout: Duration) -> Result<(), String> {
        let pid = self.pid().to_string();
        let signalled = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .map_err(|error| format!("cannot run kill: {error}"))?;
        if !signalled.success() {
            return Err(format!("kill -TERM {pid} failed"));
        }
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => {
                    return Err(format!(
                        "the server exited with {status}; its last output:\n{}",
                        self.last_output()
                    ));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(error) => return Err(format!("waiting for the server: {error}")),
            }
        }
        Err(format!(
            "the server did not stop within {} s",
            timeout.as_secs()
        ))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // After a clean stop this finds the process gone; otherwise it ends it.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Keep the last lines of a pipe, and send the address of the first
/// `listening on http://…` line.
fn drain(
    pipe: impl std::io::Read + Send + 'static,
    output: Arc<Mutex<VecDeque<String>>>,
    mut address_sender: Option<mpsc::Sender<SocketAddr>>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if let Some(sender) = &address_sender
                && let Some(address) = line
                    .strip_prefix("listening on http://")
                    .and_then(|rest| rest.trim().parse().ok())
            {
                let _ = sender.send(address);
                address_sender = None;
            }
            let mut lines = output.lock().expect("output lock");
            if lines.len() == KEPT_OUTPUT_LINES {
                lines.pop_front();
            }
            lines.push_back(line);
        }
    });
}

/// Memory from `/proc/PID/status` and CPU time from `/proc/PID/stat`.
pub fn process_usage(pid: u32) -> Result<ProcessUsage, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|error| format!("cannot read /proc/{pid}/status: {error}"))?;
    let kibibytes = |field: &str| -> u64 {
        status
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|number| number.parse().ok())
            .unwrap_or(0)
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|error| format!("cannot read /proc/{pid}/stat: {error}"))?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5); here 11 and 12 from 0.
    let ticks = |index: usize| -> f64 {
        fields
            .get(index)
            .and_then(|field| field.parse::<u64>().ok())
            .unwrap_or(0) as f64
    };
    let ticks_per_second = 100.0;
    Ok(ProcessUsage {
        peak_resident_bytes: kibibytes("VmHWM:") * 1024,
        resident_bytes: kibibytes("VmRSS:") * 1024,
        cpu_seconds: (ticks(11) + ticks(12)) / ticks_per_second,
    })
}

/// CPU seconds the whole machine has been busy since boot (all processes,
/// kernel work included), from `/proc/stat`.
pub fn machine_busy_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|line| line.starts_with("cpu ")) else {
        return 0.0;
    };
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|field| field.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: all but idle and iowait.
    let busy: u64 = [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&index| ticks.get(index))
        .sum();
    busy as f64 / 100.0
}

/// Wait, at most `limit`, until the machine is nearly idle (other work on a
/// shared machine would skew a measured phase). Returns the busy cores of
/// the last half-second window looked at.
pub fn wait_for_quiet(limit: std::time::Duration) -> f64 {
    const WINDOW: Duration = Duration::from_millis(500);
    const QUIET_CORES: f64 = 0.15;
    let deadline = Instant::now() + limit;
    loop {
        let before = machine_busy_seconds();
        std::thread::sleep(WINDOW);
        let cores = (machine_busy_seconds() - before) / WINDOW.as_secs_f64();
        if cores < QUIET_CORES || Instant::now() >= deadline {
            return cores;
        }
    }
}

/// CPU seconds so far of each thread group of a process, by thread name
/// with trailing digits dropped (`sled-io-3` counts as `sled-io-`), sorted
/// by name.
pub fn cpu_by_thread(pid: u32) -> Vec<(String, f64)> {
    let mut totals: std::collections::BTreeMap<String, f64> = Default::default();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    for task in tasks.flatten() {
        let path = task.path();
        let Ok(stat) = std::fs::read_to_string(path.join("stat")) else {
            continue;
        };
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let name = head
            .split_once('(')
            .map(|(_, name)| name.trim_end_matches(|c: char| c.is_ascii_digit()))
            .unwrap_or("?")
            .to_owned();
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = [11, 12]
            .iter()
            .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
            .sum();
        *totals.entry(name).or_insert(0.0) += ticks as f64 / 100.0;
    }
    totals.into_iter().collect()
}

/// Bytes a directory occupies on disk, as `du` counts them (allocated
/// blocks), and its files' apparent size.
pub fn disk_usage(path: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let mut allocated = 0;
    let mut apparent = 0;
    let mut pending = vec![path.to_path_buf()];
    while let Some(directory) = pending.pop() {
        for entry in std::fs::read_dir(&directory)? {
            let entry = entry?;
            let metadata = entry.metadata()?;
            if metadata.is_dir() {
                pending.push(entry.path());
            }
            allocated += metadata.blocks() * 512;
            apparent += metadata.len();
        }
    }
    Ok((allocated, apparent))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_peak_memory_and_some_cpu_time() {
        let usage = process_usage(std::process::id()).unwrap();
        assert!(usage.peak_resident_bytes >= usage.resident_bytes);
        assert!(usage.resident_bytes > 0);
        assert!(usage.cpu_seconds >= 0.0);
    }

    #[test]
    fn disk_usage_counts_files_in_subdirectories() {
        let directory = tempfile::tempdir().unwrap();
        std::fs::create_dir(directory.path().join("inner")).unwrap();
        std::fs::write(directory.path().join("inner/file"), vec![1u8; 10_000]).unwrap();
        let (allocated, apparent) = disk_usage(directory.path()).unwrap();
        assert!(apparent >= 10_000);
        assert!(allocated >= 8_192);
    }
}
