//! Facts about the running kernel: release, hostname, clocks, and struct layouts from BTF.
//!
//! Layouts move between kernels (pipe_inode_info's head/tail sit in an anonymous union since
//! 6.15; note_loss and watch_queue only exist with CONFIG_WATCH_QUEUE), so every offset the
//! programs use is looked up here, by name, in the running kernel's BTF.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use btf_rs::{Btf, Type};
use wqtrace_common::{NO_OFFSET, Offsets};

pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

pub fn release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Whether pipe2(O_NOTIFICATION_PIPE) works here (Err: the errno's one-line meaning).
pub fn notification_pipes() -> std::result::Result<(), String> {
    match pipe2(libc::O_EXCL | libc::O_CLOEXEC) {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOPKG) => Err(
            "kernel built without CONFIG_WATCH_QUEUE (pipe2(O_NOTIFICATION_PIPE) failed with ENOPKG)"
                .into(),
        ),
        Err(e) => Err(format!("pipe2(O_NOTIFICATION_PIPE) failed: {e}")),
    }
}

/// pipe2(flags): (read end, write end), closed when dropped.
pub fn pipe2(flags: libc::c_int) -> std::io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    use std::os::fd::FromRawFd as _;
    let mut fds = [0i32; 2];
    // SAFETY: fds has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), flags) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pipe2 just returned these two descriptors, owned by nobody else.
    Ok(unsafe {
        (
            std::os::fd::OwnedFd::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        )
    })
}

/// (major, minor) of the running kernel; (0, 0) when the release string says otherwise.
pub fn version() -> (u32, u32) {
    let r = release();
    let mut it = r.split(|c: char| !c.is_ascii_digit());
    let mut num = || it.next().and_then(|n| n.parse().ok()).unwrap_or(0);
    (num(), num())
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn clock_ns(clock: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// CLOCK_BOOTTIME now, in ns: the clock of `Event::ts_ns`.
pub fn boottime_ns() -> u64 {
    clock_ns(libc::CLOCK_BOOTTIME) as u64
}

/// CLOCK_REALTIME − CLOCK_BOOTTIME: add to an event timestamp to get wall time.
pub fn realtime_offset_ns() -> i64 {
    clock_ns(libc::CLOCK_REALTIME) - clock_ns(libc::CLOCK_BOOTTIME)
}

/// Opens the kernel's BTF (or the file the user gave with --btf).
pub fn open_btf(path: Option<&Path>) -> Result<(Btf, PathBuf)> {
    let p = path
        .map(Path::to_path_buf)
        .unwrap_or_else(|| VMLINUX_BTF.into());
    if !p.exists() {
        return Err(anyhow!(
            "no kernel BTF at {} (kernel built without CONFIG_DEBUG_INFO_BTF?): pass one with --btf FILE",
            crate::text::path(&p)
        ));
    }
    let btf = Btf::from_file(&p)
        .with_context(|| format!("cannot parse BTF {}", crate::text::path(&p)))?;
    Ok((btf, p))
}

/// Layout queries over one BTF.
pub struct Layout<'a> {
    btf: &'a Btf,
}

/// A struct member found by name: where it is and how big.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub offset: u32,
    pub size: u32,
}

impl<'a> Layout<'a> {
    pub fn new(btf: &'a Btf) -> Self {
        Self { btf }
    }

    fn strip(&self, mut t: Type) -> Option<Type> {
        for _ in 0..16 {
            t = match t {
                Type::Typedef(_)
                | Type::Volatile(_)
                | Type::Const(_)
                | Type::Restrict(_)
                | Type::TypeTag(_) => self.btf.resolve_chained_type(t.as_btf_type()?).ok()?,
                other => return Some(other),
            };
        }
        None
    }

    fn size_of(&self, t: &Type) -> Option<u32> {
        Some(match t {
            Type::Struct(s) | Type::Union(s) => s.size() as u32,
            Type::Int(i) => i.size() as u32,
            Type::Ptr(_) => 8,
            Type::Enum(e) => e.size() as u32,
            Type::Enum64(e) => e.size() as u32,
            Type::Array(a) => {
                let elem = self.btf.resolve_chained_type(a).ok()?;
                self.size_of(&self.strip(elem)?)? * a.len() as u32
            }
            Type::Typedef(_) | Type::Volatile(_) | Type::Const(_) | Type::Restrict(_) => {
                self.size_of(&self.strip(t.clone())?)?
            }
            _ => return None,
        })
    }

    /// The struct (or union) named `name`, preferring a full definition over a declaration.
    fn composite(&self, name: &str) -> Option<btf_rs::Struct> {
        self.btf
            .resolve_types_by_name(name)
            .ok()?
            .into_iter()
            .find_map(|t| match t {
                Type::Struct(s) | Type::Union(s) if !s.members.is_empty() => Some(s),
                _ => None,
            })
    }

    /// Byte size of struct `name`.
    pub fn struct_size(&self, name: &str) -> Option<u32> {
        self.composite(name).map(|s| s.size() as u32)
    }

    /// `member` of struct `name`, looking through anonymous structs/unions (as C does).
    pub fn field(&self, name: &str, member: &str) -> Option<Field> {
        let s = self.composite(name)?;
        self.find_in(&s, member, 0)
    }

    fn find_in(&self, s: &btf_rs::Struct, member: &str, base: u32) -> Option<Field> {
        for m in &s.members {
            let mname = self.btf.resolve_name(m).unwrap_or_default();
            let mt = self.btf.resolve_chained_type(m).ok()?;
            let off = base + m.bit_offset() / 8;
            if mname == member {
                return Some(Field {
                    offset: off,
                    size: self.size_of(&mt).unwrap_or(0),
                });
            }
            if mname.is_empty()
                && let Some(Type::Struct(inner) | Type::Union(inner)) = self.strip(mt)
                && let Some(f) = self.find_in(&inner, member, off)
            {
                return Some(f);
            }
        }
        None
    }

    /// Offset of a nested path (`a.b.c`), each step by name.
    pub fn path(&self, name: &str, path: &[&str]) -> Option<u32> {
        let mut sname = name.to_string();
        let mut total = 0;
        for (i, step) in path.iter().enumerate() {
            let s = self.composite(&sname)?;
            let f = self.find_in(&s, step, 0)?;
            total += f.offset;
            if i + 1 < path.len() {
                sname = self.member_type_name(&s, step)?;
            }
        }
        Some(total)
    }

    fn member_type_name(&self, s: &btf_rs::Struct, member: &str) -> Option<String> {
        for m in &s.members {
            if self.btf.resolve_name(m).ok()? == member {
                let t = self.strip(self.btf.resolve_chained_type(m).ok()?)?;
                return self.btf.resolve_name(t.as_btf_type()?).ok();
            }
        }
        None
    }

    /// Whether the kernel has a function of this name in its BTF (i.e. it can be fentry'd).
    pub fn has_func(&self, name: &str) -> bool {
        self.btf
            .resolve_types_by_name(name)
            .map(|v| v.iter().any(|t| matches!(t, Type::Func(_))))
            .unwrap_or(false)
    }
}

fn off(f: Option<Field>) -> u32 {
    f.map(|f| f.offset).unwrap_or(NO_OFFSET)
}

/// Every offset the programs use, resolved from `btf`. Missing fields stay [`NO_OFFSET`].
pub fn offsets(btf: &Btf) -> Offsets {
    let l = Layout::new(btf);
    let mut o = Offsets::missing();
    o.task_pid = off(l.field("task_struct", "pid"));
    o.task_state = off(l
        .field("task_struct", "__state")
        .or_else(|| l.field("task_struct", "state")));
    o.task_tgid = off(l.field("task_struct", "tgid"));
    o.task_comm = off(l.field("task_struct", "comm"));
    o.task_files = off(l.field("task_struct", "files"));
    o.files_fdt = off(l.field("files_struct", "fdt"));
    o.fdt_max_fds = off(l.field("fdtable", "max_fds"));
    o.fdt_fd = off(l.field("fdtable", "fd"));
    o.file_f_op = off(l.field("file", "f_op"));
    o.file_private_data = off(l.field("file", "private_data"));
    o.file_f_inode = off(l.field("file", "f_inode"));
    o.inode_i_ino = off(l.field("inode", "i_ino"));
    let head = l.field("pipe_inode_info", "head");
    o.pipe_head = off(head);
    o.pipe_index_size = head
        .map(|f| f.size)
        .filter(|&s| s == 2 || s == 4)
        .unwrap_or(4);
    o.pipe_tail = off(l.field("pipe_inode_info", "tail"));
    o.pipe_max_usage = off(l.field("pipe_inode_info", "max_usage"));
    o.pipe_ring_size = off(l.field("pipe_inode_info", "ring_size"));
    o.pipe_bufs = off(l.field("pipe_inode_info", "bufs"));
    o.pipe_mutex = off(l.field("pipe_inode_info", "mutex"));
    o.pipe_rd_wait = l
        .path("pipe_inode_info", &["rd_wait", "lock"])
        .unwrap_or(NO_OFFSET);
    o.pipe_rd_wait_head = l
        .path("pipe_inode_info", &["rd_wait", "head"])
        .unwrap_or(NO_OFFSET);
    o.pipe_wr_wait_head = l
        .path("pipe_inode_info", &["wr_wait", "head"])
        .unwrap_or(NO_OFFSET);
    o.wqe_private = off(l.field("wait_queue_entry", "private"));
    o.wqe_entry = off(l.field("wait_queue_entry", "entry"));
    o.pipe_watch_queue = off(l.field("pipe_inode_info", "watch_queue"));
    o.pipe_note_loss = off(l.field("pipe_inode_info", "note_loss"));
    o.mutex_owner = off(l.field("mutex", "owner"));
    o.buf_size = l.struct_size("pipe_buffer").unwrap_or(NO_OFFSET);
    o.buf_offset = off(l.field("pipe_buffer", "offset"));
    o.buf_len = off(l.field("pipe_buffer", "len"));
    o.buf_flags = off(l.field("pipe_buffer", "flags"));
    o.wq_pipe = off(l.field("watch_queue", "pipe"));
    o.wq_notes_bitmap = off(l.field("watch_queue", "notes_bitmap"));
    o.wq_nr_notes = off(l.field("watch_queue", "nr_notes"));
    o.wlist_watchers = off(l.field("watch_list", "watchers"));
    o.watch_list_node = off(l.field("watch", "list_node"));
    o.watch_queue = off(l.field("watch", "queue"));
    o.watch_id = off(l.field("watch", "id"));
    o.watch_info_id = off(l.field("watch", "info_id"));
    o.buf_page = off(l.field("pipe_buffer", "page"));
    o.page_index = off(l.field("page", "index"));
    o.wq_defunct = off(l.field("watch_queue", "defunct"));
    o.wq_filter = off(l.field("watch_queue", "filter"));
    o.wf_type_filter = off(l.field("watch_filter", "type_filter"));
    o.wf_nr_filters = off(l.field("watch_filter", "nr_filters"));
    o.wf_filters = off(l.field("watch_filter", "filters"));
    o.wtf_size = l.struct_size("watch_type_filter").unwrap_or(NO_OFFSET);
    o.wtf_type = off(l.field("watch_type_filter", "type"));
    o.wtf_subtype_filter = off(l.field("watch_type_filter", "subtype_filter"));
    o.wtf_info_filter = off(l.field("watch_type_filter", "info_filter"));
    o.wtf_info_mask = off(l.field("watch_type_filter", "info_mask"));
    o.task_cgroups = off(l.field("task_struct", "cgroups"));
    o.cset_dfl_cgrp = off(l.field("css_set", "dfl_cgrp"));
    o.cgroup_kn = off(l.field("cgroup", "kn"));
    // A u64 since 5.5 (a union of ino and generation before): else the helper is used.
    o.kn_id = l
        .field("kernfs_node", "id")
        .filter(|f| f.size == 8)
        .map(|f| f.offset)
        .unwrap_or(NO_OFFSET);
    o
}

/// Where `pcpu_hot.preempt_count` lies in its per-CPU variable (6.2+), for [`KsymsScan::ksyms`].
pub fn pcpu_hot_preempt_count(btf: &Btf) -> Option<u64> {
    Layout::new(btf)
        .field("pcpu_hot", "preempt_count")
        .map(|f| u64::from(f.offset))
}

/// The functions whose code a pipe's `kfree` may be called from (`Ksyms::free_sites`), in
/// that array's order: free_pipe_info, or, where its closing kfree(pipe) is a tail call, its
/// callers in fs/pipe.c (put_pipe_info where not inlined, pipe_release, fifo_open's and
/// pipe2's error paths).
pub const FREE_SITE_FUNCS: [&str; wqtrace_common::FREE_SITES] = [
    "free_pipe_info",
    "put_pipe_info",
    "pipe_release",
    "fifo_open",
    "create_pipe_files",
    "get_pipe_inode",
];

/// The /proc/kallsyms addresses the programs use: `__per_cpu_offset` and the preempt count
/// (execution context), and the extent of [`FREE_SITE_FUNCS`]. Taken one line at a time: by a
/// read of the file of its own ([`KsymsScan::read`]), or by the stack symbolizer's, which reads
/// it anyway (`stacks::kallsyms`). Per-cpu variables are only listed with CONFIG_KALLSYMS_ALL;
/// without them the context is reported as unknown.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct KsymsScan {
    per_cpu_offset: u64,
    pcpu_hot: u64,
    preempt_count: u64,
    free_sites: [[u64; 2]; wqtrace_common::FREE_SITES],
    /// The free site whose function started on the last line: this line's address ends it
    /// (the file lists the kernel's own symbols in address order).
    open_site: Option<usize>,
}

impl KsymsScan {
    /// Reads /proc/kallsyms for them; None when it cannot be opened.
    pub fn read() -> Option<Self> {
        // Line by line: read whole, the file (megabytes) would sit next to the parsed BTF and
        // set the process's peak RSS.
        let f = std::fs::File::open("/proc/kallsyms").ok()?;
        let mut r = std::io::BufReader::with_capacity(64 << 10, f);
        let mut scan = Self::default();
        let mut line = Vec::with_capacity(256);
        loop {
            line.clear();
            match std::io::BufRead::read_until(&mut r, b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => scan.line(line.strip_suffix(b"\n").unwrap_or(&line)),
            }
        }
        Some(scan)
    }

    /// Looks at one line (without its newline). A suffix compare, the address parsed only
    /// where a name matches: a line-by-line split of the ~100k lines took 1.5 s of each attach
    /// in the emulated test guest.
    #[inline]
    pub fn line(&mut self, l: &[u8]) {
        if let Some(i) = self.open_site.take() {
            let start = self.free_sites[i][0];
            match kallsyms_address(l) {
                Some(end) if end > start => self.free_sites[i][1] = end,
                _ => self.free_sites[i] = [0, 0],
            }
        }
        // Module symbols end in "\t[module]": none of these names is one.
        let slot = if l.ends_with(b" __per_cpu_offset") {
            &mut self.per_cpu_offset
        } else if l.ends_with(b" pcpu_hot") {
            &mut self.pcpu_hot
        } else if l.ends_with(b" __preempt_count") {
            &mut self.preempt_count
        } else if let Some(i) = FREE_SITE_FUNCS.iter().position(|f| is_function(l, f)) {
            if let Some(a) = kallsyms_address(l).filter(|&a| a != 0) {
                self.free_sites[i] = [a, 0];
                self.open_site = Some(i);
            }
            return;
        } else {
            return;
        };
        if let Some(a) = kallsyms_address(l) {
            *slot = a;
        }
    }

    /// What the programs are given: `pcpu_preempt` is [`pcpu_hot_preempt_count`].
    pub fn ksyms(&self, pcpu_preempt: Option<u64>) -> wqtrace_common::Ksyms {
        let mut k = wqtrace_common::Ksyms::none();
        // A function whose end was not found (the file's last line) is not used.
        for (to, s) in k.free_sites.iter_mut().zip(self.free_sites) {
            if s[1] > s[0] {
                *to = s;
            }
        }
        let preempt_count = if self.preempt_count != 0 {
            self.preempt_count
        } else if let (true, Some(o)) = (self.pcpu_hot != 0, pcpu_preempt) {
            self.pcpu_hot + o
        } else {
            0
        };
        // kptr_restrict hides addresses as zeros: then neither is usable.
        if self.per_cpu_offset != 0 && preempt_count != 0 {
            k.per_cpu_offset = self.per_cpu_offset;
            k.preempt_count = preempt_count;
        }
        k
    }
}

/// Whether `l` names function `name` of the kernel's own text ("… T name" or "… t name").
fn is_function(l: &[u8], name: &str) -> bool {
    let n = name.len();
    l.ends_with(name.as_bytes())
        && l.len() >= n + 3
        && l[l.len() - n - 1] == b' '
        && matches!(l[l.len() - n - 2], b'T' | b't')
        && l[l.len() - n - 3] == b' '
}

/// The address that starts a /proc/kallsyms line ("ffffffff82a0b6c0 D __per_cpu_offset").
fn kallsyms_address(line: &[u8]) -> Option<u64> {
    let hex = line.split(|&b| b == b' ').next()?;
    u64::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()
}

/// The offsets as name=value pairs, for recordings and `doctor --json`.
pub fn offsets_named(o: &Offsets) -> Vec<(String, u32)> {
    // Debug formatting lists every field by name; parse it rather than repeat 36 names.
    let dbg = format!("{o:?}");
    let inner = dbg
        .trim_start_matches("Offsets {")
        .trim_end_matches('}')
        .trim();
    inner
        .split(", ")
        .filter_map(|kv| {
            let (k, v) = kv.split_once(": ")?;
            if k.starts_with('_') {
                return None;
            }
            Some((k.trim().to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// The fields without which nothing works (fd → file → pipe → ring).
pub fn missing_core(o: &Offsets) -> Vec<&'static str> {
    let mut m = vec![];
    for (name, v) in [
        ("task_struct.files", o.task_files),
        ("task_struct.pid", o.task_pid),
        ("files_struct.fdt", o.files_fdt),
        ("fdtable.fd", o.fdt_fd),
        ("fdtable.max_fds", o.fdt_max_fds),
        ("file.f_op", o.file_f_op),
        ("file.private_data", o.file_private_data),
        ("pipe_inode_info.head", o.pipe_head),
        ("pipe_inode_info.tail", o.pipe_tail),
        ("pipe_inode_info.ring_size", o.pipe_ring_size),
    ] {
        if v == NO_OFFSET {
            m.push(name);
        }
    }
    m
}

/// Whether a task asleep on a pipe's wait queues can be recognised (sched_switch times the
/// waits of splice, tee and vmsplice by them where pipe_wait_readable/_writable cannot be hooked).
pub fn has_wait_queue_fields(o: &Offsets) -> bool {
    [
        o.pipe_rd_wait_head,
        o.pipe_wr_wait_head,
        o.wqe_private,
        o.wqe_entry,
    ]
    .iter()
    .all(|&v| v != NO_OFFSET)
}

/// Whether this kernel's pipes can carry a watch_queue (CONFIG_WATCH_QUEUE).
pub fn has_watch_queue_fields(o: &Offsets) -> bool {
    o.pipe_watch_queue != NO_OFFSET && o.wq_pipe != NO_OFFSET
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kallsyms_scan_takes_exact_names_only() {
        let text = "\
ffffffff81000000 T _text
ffffffff82a0b6c0 R __per_cpu_offset
ffffffff82a0b6d0 r __ksymtab___per_cpu_offset
0000000000032f00 D pcpu_hot
0000000000032f08 d my_pcpu_hot
ffffffffc0001000 t __preempt_count\t[some_module]
0000000000001234 D __preempt_count";
        let scan = |t: &str| {
            let mut s = KsymsScan::default();
            t.lines().for_each(|l| s.line(l.as_bytes()));
            s
        };
        assert_eq!(
            scan(text),
            KsymsScan {
                per_cpu_offset: 0xffffffff82a0b6c0,
                pcpu_hot: 0x32f00,
                preempt_count: 0x1234,
                ..KsymsScan::default()
            }
        );
        // __preempt_count itself (before 6.2) wins over pcpu_hot's field.
        let k = scan(text).ksyms(Some(8));
        assert_eq!(
            (k.per_cpu_offset, k.preempt_count),
            (0xffffffff82a0b6c0, 0x1234)
        );
        let k = scan(&text.replace(" __preempt_count", " other")).ksyms(Some(8));
        assert_eq!(k.preempt_count, 0x32f08);
        // kptr_restrict: every address reads as zero, and nothing is usable.
        let hidden = "0000000000000000 R __per_cpu_offset\n0000000000000000 D pcpu_hot\n";
        assert_eq!(scan(hidden), KsymsScan::default());
        assert_eq!(scan(hidden).ksyms(Some(8)), wqtrace_common::Ksyms::none());
    }

    #[test]
    fn kallsyms_scan_finds_the_extent_of_the_pipe_free_sites() {
        let text = "\
ffffffff816ec570 T free_pipe_info
ffffffff816ec620 t __pfx_pipe_release
ffffffff816ec630 t pipe_release
ffffffff816ec760 t __pfx_fifo_open
ffffffff816ec770 d fifo_open
ffffffff816ec780 t fifo_open\t[a_module]
ffffffff816ec790 t my_pipe_release
ffffffff816ecab0 T create_pipe_files";
        let mut s = KsymsScan::default();
        text.lines().for_each(|l| s.line(l.as_bytes()));
        let k = s.ksyms(None);
        let mut want = [[0; 2]; wqtrace_common::FREE_SITES];
        want[0] = [0xffffffff816ec570, 0xffffffff816ec620];
        want[2] = [0xffffffff816ec630, 0xffffffff816ec760];
        // fifo_open as data or in a module is not the function; create_pipe_files is the last
        // line, so where it ends is not known.
        assert_eq!(k.free_sites, want);
        // Without the preempt count's symbols, the free sites are still given.
        assert_eq!((k.per_cpu_offset, k.preempt_count), (0, 0));
        let hidden = "0000000000000000 T free_pipe_info\n0000000000000000 t pipe_release\n";
        let mut s = KsymsScan::default();
        hidden.lines().for_each(|l| s.line(l.as_bytes()));
        assert_eq!(s.ksyms(None), wqtrace_common::Ksyms::none());
    }

    /// Against the running kernel's own BTF: the layout the programs depend on is found, and
    /// agrees with facts that hold on every kernel since pipe rings exist.
    #[test]
    fn resolves_pipe_layout_from_running_kernel() {
        let (btf, _) = open_btf(None).expect("this machine has /sys/kernel/btf/vmlinux");
        let o = offsets(&btf);
        assert!(
            missing_core(&o).is_empty(),
            "missing: {:?}",
            missing_core(&o)
        );
        // mutex is the first member of pipe_inode_info.
        assert_eq!(o.pipe_mutex, 0);
        // The cgroup id chain (cgroup v2, kernfs ids of 64 bits: every kernel since 5.5).
        for (name, v) in [
            ("task_struct.cgroups", o.task_cgroups),
            ("css_set.dfl_cgrp", o.cset_dfl_cgrp),
            ("cgroup.kn", o.cgroup_kn),
            ("kernfs_node.id", o.kn_id),
        ] {
            assert_ne!(v, NO_OFFSET, "{name}");
        }
        assert_ne!(o.pipe_head, o.pipe_tail);
        assert!(o.pipe_rd_wait > 0 && o.pipe_rd_wait < o.pipe_head);
        // The wait queues' lists (a spinlock first, then the list head), and an entry's task
        // and list node: every kernel since wait_queue_entry was named (4.13).
        assert!(o.pipe_rd_wait_head > o.pipe_rd_wait && o.pipe_rd_wait_head < o.pipe_head);
        assert!(o.pipe_wr_wait_head > o.pipe_rd_wait_head && o.pipe_wr_wait_head < o.pipe_head);
        assert_ne!(o.wqe_private, NO_OFFSET);
        assert!(o.wqe_entry > o.wqe_private && o.wqe_entry != NO_OFFSET);
        assert!(o.buf_size >= 32, "pipe_buffer is at least 32 bytes");
        assert_eq!(o.pipe_index_size, 4);
        let named = offsets_named(&o);
        assert!(
            named
                .iter()
                .any(|(k, v)| k == "pipe_head" && *v == o.pipe_head)
        );
        assert!(named.iter().all(|(k, _)| !k.starts_with('_')));
    }

    #[test]
    fn missing_btf_is_one_clear_error() {
        let Err(e) = open_btf(Some(Path::new("/nonexistent/vmlinux"))) else {
            panic!("a missing BTF file must be an error");
        };
        assert!(e.to_string().contains("--btf"), "{e}");
    }
}
