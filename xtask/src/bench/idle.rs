//! Keeping idle CPUs out of halt while a benchmark runs.
//!
//! Both machines the benchmark runs on are virtual: a halted CPU is descheduled by the
//! hypervisor (or, in the TCG guest, parks its vCPU thread) and wakes up tens of microseconds
//! later, at a cost that depends on what else the host runs. The ping-pong blocks on every
//! message, so with halting idle it measures wake-up latency, and anything that keeps a CPU
//! busy a little longer (the empty BPF programs, a tracer) can make it *faster*. Polling idle
//! takes that out, which leaves the cost of the traced syscalls themselves.

use std::fs::File;
use std::io::Write as _;

/// Shallowest idle while alive: the PM QoS request `/dev/cpu_dma_latency = 0` stands as long
/// as its file stays open (cpuidle then only picks states with zero exit latency, i.e. POLL).
pub struct Shallow {
    _qos: Option<File>,
    /// How idle was kept shallow on this machine, or why it was not: for the report.
    pub how: String,
}

impl Shallow {
    pub fn hold() -> Shallow {
        let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
        if cmdline.split_whitespace().any(|a| a == "idle=poll") {
            return Shallow {
                _qos: None,
                how: "idle=poll on the kernel command line (idle CPUs poll, never halt)".into(),
            };
        }
        let driver = std::fs::read_to_string("/sys/devices/system/cpu/cpuidle/current_driver")
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        if driver.is_empty() || driver == "none" {
            return Shallow {
                _qos: None,
                how: "not controlled: no cpuidle driver and no idle=poll (idle CPUs halt)".into(),
            };
        }
        let qos = File::options()
            .write(true)
            .open("/dev/cpu_dma_latency")
            .and_then(|mut f| f.write_all(&0i32.to_ne_bytes()).map(|_| f));
        match qos {
            Ok(f) => Shallow {
                _qos: Some(f),
                how: format!(
                    "cpuidle driver {driver}, held at its zero-latency state (POLL) by \
                     /dev/cpu_dma_latency = 0 for the whole part"
                ),
            },
            Err(e) => Shallow {
                _qos: None,
                how: format!("not controlled: /dev/cpu_dma_latency: {e} (idle CPUs may halt)"),
            },
        }
    }
}
