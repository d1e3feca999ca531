//! The live source: the programs' BPF ring buffer.

use std::time::Duration;

use anyhow::Result;
use aya::maps::{MapData, RingBuf};
use wqtrace_common::{ABI_VERSION, Event};

use super::{EventSource, SessionMeta};
use crate::{
    cli::ProbeOpts,
    kernel,
    probe::{
        loader::{self, Probes},
        plan::Plan,
    },
};

/// Loaded and attached programs plus their ring buffer. Dropping it detaches every probe.
pub struct LiveSource {
    ring: RingBuf<MapData>,
    probes: Probes,
    meta: SessionMeta,
}

/// Whether pipe2(O_NOTIFICATION_PIPE) works here (Err: the errno's one-line meaning).
pub fn notification_pipes() -> std::result::Result<(), String> {
    let mut fds = [0i32; 2];
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_EXCL | libc::O_CLOEXEC) };
    if r == 0 {
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    Err(match err.raw_os_error() {
        Some(libc::ENOPKG) => "kernel built without CONFIG_WATCH_QUEUE (pipe2(O_NOTIFICATION_PIPE) failed with ENOPKG)".into(),
        _ => format!("pipe2(O_NOTIFICATION_PIPE) failed: {err}"),
    })
}

impl LiveSource {
    /// Checks privileges and kernel features, resolves offsets from BTF, loads the programs and
    /// attaches them according to the probe plan.
    pub fn open(opts: &ProbeOpts) -> Result<Self> {
        let mut probes = Probes::open(opts)?;
        let ring = probes.take_ring()?;
        let meta = SessionMeta {
            kernel_release: kernel::release(),
            hostname: kernel::hostname(),
            abi_version: ABI_VERSION,
            realtime_offset_ns: kernel::realtime_offset_ns(),
            attach: probes.plan.attach_table(),
            notification_pipes: notification_pipes().is_ok(),
            offsets: kernel::offsets_named(&probes.offsets),
        };
        Ok(Self { ring, probes, meta })
    }

    pub fn plan(&self) -> &Plan {
        &self.probes.plan
    }

    /// Events the programs submitted so far (for rate displays and loss accounting).
    pub fn submitted(&self) -> u64 {
        self.probes.submitted()
    }

    fn drain(&mut self, out: &mut Vec<Event>) -> usize {
        let mut n = 0;
        while let Some(item) = self.ring.next() {
            if item.len() >= size_of::<Event>() {
                // The ring buffer only guarantees 8-byte alignment; Event needs no more, but
                // read_unaligned keeps that an implementation detail.
                let e = unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<Event>()) };
                out.push(e);
                n += 1;
            }
        }
        n
    }
}

impl EventSource for LiveSource {
    fn next_batch(&mut self, out: &mut Vec<Event>, timeout: Duration) -> Result<bool> {
        if self.drain(out) > 0 {
            return Ok(true);
        }
        let mut pfd = libc::pollfd {
            fd: loader::ring_fd(&self.ring),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e.into());
            }
        }
        self.drain(out);
        Ok(true)
    }

    fn lost(&self) -> u64 {
        self.probes.lost()
    }

    fn meta(&self) -> &SessionMeta {
        &self.meta
    }
}
