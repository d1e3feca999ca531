//! The probe plan: for each mission hook, which kernel function or tracepoint it uses on this
//! kernel and which attach method actually worked (fentry → kprobe → tracepoint fallback, as
//! libbpf-tools do). Decided by trying to load and attach, never by guessing from the version.

use serde::Serialize;
use wqtrace_common::Ksyms;

use crate::kernel;

/// The user's preference for kernel-function hooks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum AttachPref {
    #[default]
    Auto,
    Fentry,
    Kprobe,
    Tracepoint,
}

impl AttachPref {
    /// Kernel-function methods to try, in order.
    pub fn methods(self) -> &'static [Method] {
        match self {
            Self::Auto => &[Method::Fentry, Method::Kprobe],
            Self::Fentry => &[Method::Fentry],
            Self::Kprobe => &[Method::Kprobe],
            Self::Tracepoint => &[],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Fentry,
    Kprobe,
    TpBtf,
    /// Covered by the syscall/sched tracepoints instead of a kernel-function hook.
    Tracepoint,
    Unavailable,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Self::Fentry => "fentry",
            Self::Kprobe => "kprobe",
            Self::TpBtf => "tp_btf",
            Self::Tracepoint => "tracepoint",
            Self::Unavailable => "unavailable",
        }
    }

    /// Whether a method as a session's attach plan stores it (`Plan::attach_table`: "fentry
    /// free_pipe_info", "unavailable") says the hook was not attached.
    pub fn says_unavailable(stored: &str) -> bool {
        stored.split_whitespace().next() == Some(Self::Unavailable.name())
    }
}

/// The mission's hooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Hook {
    /// pipe2/read/write/splice/tee/vmsplice/ioctl/close through sys_enter/sys_exit.
    RingOps,
    /// Off-CPU time inside pipe read()/write() (sched_switch).
    OffCpuWaits,
    /// contention_begin/contention_end on pipe mutexes and rd_wait spinlocks.
    LockContention,
    /// A notification written into (or lost on) a notification pipe.
    NotificationPost,
    /// get_pipe_info() refusing a notification pipe for splice/tee/vmsplice.
    GetPipeInfo,
    /// pipe_wait (≤ 5.9) or pipe_wait_readable/_writable (≥ 5.10), splice paths.
    PipeWait,
    /// free_pipe_info(): the pipe is gone.
    PipeRelease,
}

impl Hook {
    pub const ALL: [Hook; 7] = [
        Hook::RingOps,
        Hook::OffCpuWaits,
        Hook::LockContention,
        Hook::NotificationPost,
        Hook::GetPipeInfo,
        Hook::PipeWait,
        Hook::PipeRelease,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::RingOps => "ring_ops",
            Self::OffCpuWaits => "off_cpu_waits",
            Self::LockContention => "lock_contention",
            Self::NotificationPost => "notification_post",
            Self::GetPipeInfo => "get_pipe_info",
            Self::PipeWait => "pipe_wait",
            Self::PipeRelease => "pipe_release",
        }
    }

    /// What users lose when only the tracepoint fallback covers this hook.
    pub fn fallback(self) -> &'static str {
        match self {
            Self::NotificationPost => {
                "none: watch_queue has no tracepoint (needs fentry or kprobe)"
            }
            Self::GetPipeInfo => {
                "sys_exit errno (EINVAL/EBADF) of splice/tee/vmsplice on a notification pipe"
            }
            Self::PipeWait => {
                "sched_switch: time asleep on a splice/tee/vmsplice's pipe wait queues (sleeps \
                 only; one woken as it leaves the CPU cannot be placed: counted as unplaced)"
            }
            Self::PipeRelease => "close() of a pipe fd",
            _ => "none",
        }
    }
}

/// One row of the plan.
#[derive(Debug, Clone, Serialize)]
pub struct HookPlan {
    pub hook: Hook,
    /// The function or tracepoint(s) used ("" when none).
    pub target: String,
    pub method: Method,
    /// Why the better methods were not used, or what covers the hook instead.
    pub note: String,
}

impl HookPlan {
    /// Adds `more` to what the note says.
    pub fn add_note(&mut self, more: &str) {
        if !self.note.is_empty() {
            self.note.push_str("; ");
        }
        self.note.push_str(more);
    }
}

/// The plan for a session, in `Hook::ALL` order.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Plan {
    pub hooks: Vec<HookPlan>,
    /// Whether the programs read kernel memory by direct loads (`probe::direct`), not probe
    /// reads.
    pub direct_loads: bool,
}

impl Plan {
    pub fn method(&self, hook: Hook) -> Method {
        self.hooks
            .iter()
            .find(|h| h.hook == hook)
            .map(|h| h.method)
            .unwrap_or(Method::Unavailable)
    }

    /// Hook name → method name, as recordings store it.
    pub fn attach_table(&self) -> Vec<(String, String)> {
        self.hooks
            .iter()
            .map(|h| {
                let m = if h.target.is_empty() {
                    h.method.name().to_string()
                } else {
                    format!("{} {}", h.method.name(), h.target)
                };
                (h.hook.name().to_string(), m)
            })
            .collect()
    }
}

/// The tp_btf hooks: (program, tracepoint) pairs, all of which must attach. RingOps is the
/// base every session needs (its failure is an error); the others are reported unavailable.
pub fn tracepoints(hook: Hook) -> &'static [(&'static str, &'static str)] {
    match hook {
        Hook::RingOps => &[
            ("sys_enter", "sys_enter"),
            ("sys_exit", "sys_exit"),
            ("thread_exit", "sched_process_exit"),
        ],
        Hook::OffCpuWaits => &[("sched_switch", "sched_switch")],
        Hook::LockContention => &[
            ("contention_begin", "contention_begin"),
            ("contention_end", "contention_end"),
        ],
        _ => &[],
    }
}

/// The programs sys_exit tail-calls (through the TAILS map), at their index there: reads of
/// notification pipes, and the splice family's ring ops and rejections.
pub const TAIL_PROGRAMS: [&str; 2] = ["sys_exit_read_scan", "sys_exit_splice"];

/// The maps userspace opens by name.
pub const MAPS: [&str; 5] = ["EVENTS0", "STATS", "RUNTIME", "TAILS", "KNOWN_PIPES"];

/// Kernel functions that can implement each kernel-function hook, best first, with the
/// programs (entry, optional return) for each attach method. `post_notification` is the
/// original design's name; `post_one_notification` is exact but on 6.1–6.12 it only exists as
/// an untraceable `.isra` clone, so `__post_watch_notification` (walking its watch list) is the
/// usual result.
pub struct Candidate {
    pub func: &'static str,
    pub fentry: (&'static str, Option<&'static str>),
    pub kprobe: (&'static str, Option<&'static str>),
}

pub fn candidates(hook: Hook) -> &'static [Candidate] {
    match hook {
        Hook::NotificationPost => &[
            Candidate {
                func: "post_one_notification",
                fentry: ("post1_fentry", Some("post1_fexit")),
                kprobe: ("post1_kprobe", Some("post1_kretprobe")),
            },
            Candidate {
                func: "__post_watch_notification",
                fentry: ("post_fentry", Some("post_fexit")),
                kprobe: ("post_kprobe", Some("post_kretprobe")),
            },
        ],
        Hook::GetPipeInfo => &[Candidate {
            func: "get_pipe_info",
            fentry: ("gpi_fexit", None),
            kprobe: ("gpi_kprobe", Some("gpi_kretprobe")),
        }],
        Hook::PipeWait => &[
            Candidate {
                func: "pipe_wait_readable",
                fentry: ("wait_rd_fentry", Some("wait_rd_fexit")),
                kprobe: ("wait_rd_kprobe", Some("wait_rd_kretprobe")),
            },
            Candidate {
                func: "pipe_wait_writable",
                fentry: ("wait_wr_fentry", Some("wait_wr_fexit")),
                kprobe: ("wait_wr_kprobe", Some("wait_wr_kretprobe")),
            },
        ],
        Hook::PipeRelease => &[Candidate {
            func: "free_pipe_info",
            fentry: ("release_fentry", None),
            kprobe: ("release_kprobe", None),
        }],
        _ => &[],
    }
}

/// A tp_btf program standing in for a hook's kernel functions where neither fentry nor kprobe
/// attaches (or with `--attach tracepoint`), tried before the hook falls back to what the
/// other tracepoints see (`Hook::fallback`).
pub struct StandIn {
    pub prog: &'static str,
    pub tracepoint: &'static str,
    /// What the program covers on this kernel, from what /proc/kallsyms told, or why it
    /// cannot run here.
    pub scope: fn(&Ksyms) -> Result<String, String>,
}

pub fn stand_in(hook: Hook) -> Option<StandIn> {
    match hook {
        Hook::PipeRelease => Some(StandIn {
            prog: "release_kfree",
            tracepoint: "kfree",
            scope: kfree_scope,
        }),
        _ => None,
    }
}

/// free_pipe_info's `kfree(pipe)`, seen at the kfree tracepoint when the call comes from the
/// pipe code: free_pipe_info or a caller its kfree may be a tail call from.
fn kfree_scope(ksyms: &Ksyms) -> Result<String, String> {
    let sites: Vec<&str> = kernel::FREE_SITE_FUNCS
        .iter()
        .zip(ksyms.free_sites)
        .filter(|(_, [start, end])| end > start)
        .map(|(f, _)| *f)
        .collect();
    if sites.is_empty() {
        return Err(format!(
            "tp_btf kfree: none of {} in /proc/kallsyms",
            kernel::FREE_SITE_FUNCS.join(", ")
        ));
    }
    Ok(format!(
        "frees seen at kfree() called from {}",
        sites.join(", ")
    ))
}

/// The function whose call inside post_one_notification's critical section tells exactly
/// which slot and note a post took (see wqtrace-ebpf/src/notify.rs).
pub const POST_LANDED_FUNC: &str = "__wake_up_locked_sync_key";

/// Functions attached with the same method once the hook's main one works: watch removal
/// notifications go from remove_watch_from_object straight to post_one_notification, and
/// every post that lands is seen under the ring lock at its wake-up of the readers.
pub fn companions(hook: Hook) -> &'static [Candidate] {
    match hook {
        Hook::NotificationPost => &[
            Candidate {
                func: "remove_watch_from_object",
                fentry: ("removal_fentry", Some("removal_fexit")),
                kprobe: ("removal_kprobe", Some("removal_kretprobe")),
            },
            Candidate {
                func: POST_LANDED_FUNC,
                fentry: ("landed_fentry", None),
                kprobe: ("landed_kprobe", None),
            },
        ],
        _ => &[],
    }
}

/// Whether all candidates of the hook must attach (pipe_wait_readable and _writable together),
/// or the first that works wins.
pub fn needs_all(hook: Hook) -> bool {
    hook == Hook::PipeWait
}
