//! What the tracer reports against what the kernel did, on a watch_queue kernel. Runs inside
//! the test VM (`cargo xtask test` boots 6.12 and 6.1 and runs this binary there as root), for
//! each attach path: auto (fentry), forced kprobe, forced tracepoint fallback.

mod common;

use common::{Tracer, contend_tids, has_flag, kind, u, workload};
use serde_json::Value;

fn in_vm() {
    assert!(
        std::env::var_os("WQTRACE_IN_VM").is_some(),
        "these tests need a watch_queue kernel: run them with `cargo xtask test` (VM stage)"
    );
}

/// Every notification the reader read was posted, in order, into consecutive slots, with the
/// type/subtype/watch id/length the reader saw: counts match exactly.
fn check_notify(events: &[Value], w: &Value) {
    let pid = u(&w["pid"]);
    let ino = u(&w["pipe_ino"]);
    let posts: Vec<&Value> = kind(events, "notify_posted", pid)
        .into_iter()
        .chain(
            // Removal notifications come from the key garbage collector, not the workload.
            events.iter().filter(|e| {
                e["kind"] == "notify_posted"
                    && e["tgid"].as_u64() != Some(pid)
                    && u(&e["ino"]) == ino
            }),
        )
        .filter(|e| u(&e["ino"]) == ino && !has_flag(e, "loss") && !has_flag(e, "filtered"))
        .collect();
    let mut posts = posts;
    posts.sort_by_key(|e| u(&e["ts_ns"]));
    let read = w["notifications"].as_array().unwrap();
    // Traced posts and the workload's notifications name these fields alike.
    let key = |n: &&Value| {
        (
            u(&n["type"]),
            u(&n["subtype"]),
            u(&n["watch_id"]),
            u(&n["len"]),
        )
    };
    let seen: Vec<_> = posts.iter().map(key).collect();
    let want: Vec<_> = read.iter().map(|n| key(&n)).collect();
    assert_eq!(seen, want, "posted (traced) vs read (workload)");
    // Each post advanced head by one (both read from the pipe); keyctl posts from the workload
    // run in task context (read from preempt_count via kallsyms).
    for e in &posts {
        if u(&e["tgid"]) == pid {
            assert_eq!(e["ctx"], "task", "{e}");
        }
        assert_eq!(u(&e["head"]), u(&e["head_before"]) + 1, "{e}");
        assert!(u(&e["slot"]) < u(&e["ring_size"]), "{e}");
        assert!(u(&e["note"]) < u(&e["nr_notes"]), "{e}");
    }
    // A fresh pipe's ring starts at head 0: its first notification lands in slot 0 and the next
    // ones in the slots after it.
    let slots: Vec<u64> = posts.iter().map(|e| u(&e["slot"])).collect();
    assert_eq!(slots.first(), Some(&0), "first post's slot: {slots:?}");
    for pair in slots.windows(2) {
        assert_eq!(pair[1], pair[0] + 1, "slots not consecutive: {slots:?}");
    }
    // The reader's read()s took exactly as many slots off the ring as were posted.
    let consumed: u64 = kind(events, "ring_op", pid)
        .iter()
        .filter(|e| u(&e["ino"]) == ino && e["op"] == "read")
        .map(|e| u(&e["tail"]) - u(&e["tail_before"]))
        .sum();
    assert_eq!(consumed, posts.len() as u64, "slots read vs posted");
    // The pipe's life around it: created as a notification pipe, sized, watched.
    let created = kind(events, "pipe_created", pid);
    assert!(
        created
            .iter()
            .any(|e| u(&e["ino"]) == ino && has_flag(e, "notification_pipe")),
        "no pipe_created for {ino}"
    );
    let sized = kind(events, "watch_queue_sized", pid);
    assert!(
        sized
            .iter()
            .any(|e| u(&e["ino"]) == ino && u(&e["nr_notes"]) >= u(&w["nr_notes"]))
    );
    let watches = kind(events, "watch_added", pid);
    assert!(
        watches
            .iter()
            .any(|e| u(&e["watch_id"]) == u(&w["watch_id"]))
    );
}

/// Each rejected splice/tee/vmsplice appears exactly once, with the right task, syscall, fds
/// and errno; write()'s EXDEV and the ordinary pipe's successes are not rejections.
fn check_reject(events: &[Value], w: &Value) {
    let pid = u(&w["pid"]);
    let tid = u(&w["tid"]);
    let mut rejected = kind(events, "splice_rejected", pid);
    let attempts = w["attempts"].as_array().unwrap();
    let expected: Vec<&Value> = attempts
        .iter()
        .filter(|a| {
            a["notification_pipe"] == true && a["syscall"] != "write" && u(&a["errno"]) != 0
        })
        .collect();
    assert!(
        expected.len() >= 6,
        "workload made too few rejected calls: {w}"
    );
    for a in &expected {
        let fd = |v: &Value| v.as_i64().unwrap_or(-1);
        let pos = rejected
            .iter()
            .position(|e| {
                e["op"] == a["syscall"]
                    && e["fd_in"].as_i64() == Some(fd(&a["fd_in"]))
                    && e["fd_out"].as_i64() == Some(fd(&a["fd_out"]))
                    && e["ret"].as_i64() == Some(-(u(&a["errno"]) as i64))
            })
            .unwrap_or_else(|| panic!("attempt {a} not reported; reported: {rejected:?}"));
        let e = rejected.remove(pos);
        assert_eq!(u(&e["tid"]), tid);
        assert_eq!(u(&e["ino"]), u(&w["notification_pipe_ino"]));
    }
    assert!(
        rejected.is_empty(),
        "reported but not rejected: {rejected:?}"
    );
    // The ordinary pipe's successful splices and tees are ring operations, not rejections.
    let ok_splices = attempts
        .iter()
        .filter(|a| {
            a["notification_pipe"] == false && a["syscall"] != "write" && u(&a["errno"]) == 0
        })
        .count();
    let ring_ops = kind(events, "ring_op", pid)
        .into_iter()
        .filter(|e| {
            ["splice", "tee", "vmsplice"].contains(&e["op"].as_str().unwrap())
                && e["ret"].as_i64() > Some(0)
        })
        .count();
    assert!(
        ring_ops >= ok_splices,
        "{ring_ops} ring ops for {ok_splices} successful splices"
    );
}

/// Loss is reported on exactly the posts that found the ring or the notes full, and the
/// successful posts match what the reader got.
fn check_overflow(events: &[Value], w: &Value) {
    let pid = u(&w["pid"]);
    let ino = u(&w["pipe_ino"]);
    // The flood of key updates (type 1, subtype 1) is what the workload counts as attempted;
    // its final revoke and the watch removal land after the reads.
    let mut posts: Vec<&Value> = kind(events, "notify_posted", pid)
        .into_iter()
        .filter(|e| u(&e["ino"]) == ino && u(&e["type"]) == 1 && u(&e["subtype"]) == 1)
        .collect();
    posts.sort_by_key(|e| u(&e["ts_ns"]));
    assert_eq!(
        posts.len() as u64,
        u(&w["posts_attempted"]),
        "one event per post"
    );
    let lost: Vec<&&Value> = posts.iter().filter(|e| has_flag(e, "loss")).collect();
    let ok = posts.len() - lost.len();
    let read_real = w["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["type"] == 1 && n["subtype"] == 1)
        .count();
    assert_eq!(ok, read_real, "successful posts vs notifications read");
    assert!(!lost.is_empty() && u(&w["loss_records"]) >= 1);
    for e in &lost {
        // One poster, no reader: nothing moved the ring while it ran, so the reason is exact.
        let full = u(&e["head_before"]) - u(&e["tail_before"]) >= u(&e["ring_size"]);
        assert!(
            (full && has_flag(e, "ring_full")) || (!full && has_flag(e, "notes_full")),
            "loss reason: {e}"
        );
        assert_eq!(
            u(&e["head"]),
            u(&e["head_before"]),
            "lost post moved head: {e}"
        );
    }
    // The first loss comes right after the post that filled the ring.
    let first_loss = posts.iter().position(|e| has_flag(e, "loss")).unwrap();
    let filler = posts[first_loss - 1];
    assert_eq!(
        u(&filler["head"]) - u(&filler["tail"]),
        u(&filler["ring_size"]),
        "{filler}"
    );
}

/// A name a poster may give itself: terminal escapes.
const HOSTILE: &str = "\x1b[31mEVIL\x1b]0;x\x07";

/// One tracer session per attach path (loading the programs is the slow part under TCG),
/// running the notification, rejection and overflow scenarios under it. The tracer gives up
/// root once attached (uid 65534, no capabilities) and must still see, count and detach.
fn kernel_function_path(attach: &str, method: &str) {
    in_vm();
    let t = Tracer::start(&["--attach", attach, "--user", "65534"]);
    common::assert_dropped_to(t.pid(), 65534);
    let links = t.link_ids();
    for hook in [
        "notification_post",
        "get_pipe_info",
        "pipe_wait",
        "pipe_release",
    ] {
        assert_eq!(t.method(hook), method, "{hook}: plan {:?}", t.plan());
    }
    let notify = workload(&["notify", "--count", "5", "--name", HOSTILE]);
    let reject = workload(&["reject"]);
    let overflow = workload(&["overflow"]);
    let events = t.stop();
    for id in links {
        assert!(
            !common::link_alive(id),
            "link {id} still attached after the drop and SIGINT"
        );
    }
    check_notify(&events, &notify);
    let posts = kind(&events, "notify_posted", u(&notify["pid"]));
    assert!(
        !posts.is_empty() && posts.iter().all(|e| e["comm"] == HOSTILE),
        "the poster's exact name in JSON: {:?}",
        posts.first().map(|e| &e["comm"])
    );
    check_reject(&events, &reject);
    check_overflow(&events, &overflow);
    for e in kind(&events, "splice_rejected", u(&reject["pid"])) {
        assert!(
            has_flag(e, "kfunc"),
            "rejection not from get_pipe_info: {e}"
        );
    }
    // The tracer runs as uid 65534 here: it may not read the root workload's memory map, so
    // the user frames stay addresses, and say why.
    check_reject_stacks(&events, &reject, false, method == "fentry");
}

/// Every rejection carries the kernel path that refused it (the splice family's syscall, and
/// get_pipe_info where that is hooked) and a user stack: named down to the workload's own
/// functions when the tracer may read the process's map (`named`), else with a note.
/// `into_gpi`: the kernel stack reaches get_pipe_info itself (fexit runs inside it; a
/// kretprobe runs after it returned).
fn check_reject_stacks(events: &[Value], w: &Value, named: bool, into_gpi: bool) {
    let rejected = kind(events, "splice_rejected", u(&w["pid"]));
    assert!(!rejected.is_empty());
    let frames = |e: &Value, k: &str| -> Vec<String> {
        e[k].as_array()
            .unwrap_or_else(|| panic!("no {k} on {e}"))
            .iter()
            .map(|f| f.as_str().unwrap().to_string())
            .collect()
    };
    for e in rejected {
        let k = frames(e, "kstack");
        if has_flag(e, "kfunc") {
            assert!(
                k.iter().any(|f| f.contains("splice") || f.contains("tee")),
                "kernel stack not through the splice family: {k:?}"
            );
            if into_gpi {
                assert!(k[0].starts_with("get_pipe_info+"), "{k:?}");
            }
        } else {
            assert!(
                k.iter().any(|f| f.contains("syscall")),
                "kernel stack not the syscall's exit: {k:?}"
            );
        }
        let us = frames(e, "ustack");
        // bpf_get_stackid refuses a stack whose hash bucket another stack holds (EEXIST; the
        // map does not reuse ids that events already carry): then the one line says exactly
        // that (seen on the 6.12 guest in CI on 01deff6).
        let collided = us.len() == 1 && us[0].contains("holds another stack under the same hash");
        if named {
            assert!(
                us.iter().any(|f| f.contains("wqtrace::workload::reject::")) || collided,
                "user stack does not name the workload: {us:?}"
            );
        } else {
            // Frames it could not name come with `ustack_note`; a stack the kernel did not take
            // at all is one line saying why (CI once saw that for a vmsplice under TCG).
            let named = us.iter().any(|f| f.contains("wqtrace::workload::"));
            let not_taken = us.len() == 1 && us[0].starts_with("unknown (") && us[0].len() > 10;
            assert!(named || e.get("ustack_note").is_some() || not_taken, "{e}");
        }
    }
}

#[test]
fn fentry_path_posts_rejections_loss() {
    kernel_function_path("auto", "fentry");
}

#[test]
fn kprobe_path_posts_rejections_loss() {
    kernel_function_path("kprobe", "kprobe");
}

/// A key watched from more queues than the post hook walks (4): every landed post is still
/// reported with its slot and watch id (the landing hook does not depend on the walk); what
/// the walk could not follow is reported as unattributed, and the tracer itself lost nothing.
#[test]
fn watchers_past_the_walk_are_reported_or_unattributed() {
    in_vm();
    let t = Tracer::start(&[]);
    let w = workload(&["notify", "--count", "3", "--extra-watchers", "4"]);
    let (events, lost) = t.stop_counting_lost();
    assert_eq!(w["ok"], true, "{w}");
    assert_eq!(lost, 0, "the tracer dropped events");
    let extra: Vec<u64> = w["extra_watcher_inos"]
        .as_array()
        .unwrap()
        .iter()
        .map(u)
        .collect();
    assert_eq!(extra.len(), 4, "{w}");
    // WATCH_TYPE_KEY_NOTIFY posts on the key itself (not the keyring), as the main reader saw them.
    let key_watch = u(&w["watch_id"]);
    let key_posts = w["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| u(&n["type"]) == 1 && u(&n["watch_id"]) == key_watch)
        .count() as u64;
    assert!(key_posts >= 5, "update ×3, setperm, revoke: {w}");
    // Key posts landed in a pipe (with this watch id, where given).
    let landed_into = |ino: u64, watch: Option<u64>| {
        events
            .iter()
            .filter(|e| {
                e["kind"] == "notify_posted"
                    && u(&e["ino"]) == ino
                    && u(&e["type"]) == 1
                    && watch.is_none_or(|id| u(&e["watch_id"]) == id)
                    && e["outcome"] == "landed"
            })
            .count() as u64
    };
    for ino in &extra {
        assert_eq!(
            landed_into(*ino, None),
            key_posts,
            "extra watcher pipe {ino}"
        );
    }
    // The main watch was added first, so it is fifth on the key's list: past the walk, yet
    // every post that landed there is reported, with the watch id the reader saw.
    assert_eq!(
        landed_into(u(&w["pipe_ino"]), Some(key_watch)),
        key_posts,
        "fifth watch"
    );
    let unattributed = events
        .iter()
        .filter(|e| e["kind"] == "notify_posted" && e["outcome"] == "unattributed")
        .count() as u64;
    assert!(
        unattributed >= key_posts,
        "{unattributed} unattributed < {key_posts} key posts past the walk"
    );
}

/// Without kernel-function hooks, rejections are still found (from the syscalls' errnos),
/// nothing claims to have seen a post, and pipes freed are seen at their kfree (whose pointer
/// argument older verifiers refuse to load from the context).
#[test]
fn tracepoint_fallback_still_finds_rejections() {
    in_vm();
    let t = Tracer::start(&["--attach", "tracepoint"]);
    assert_eq!(
        t.method("get_pipe_info"),
        "tracepoint",
        "plan {:?}",
        t.plan()
    );
    assert_eq!(t.method("pipe_release"), "tp_btf", "plan {:?}", t.plan());
    assert_eq!(
        t.method("notification_post"),
        "unavailable",
        "plan {:?}",
        t.plan()
    );
    let reject = workload(&["reject"]);
    let notify = workload(&["notify", "--count", "2"]);
    let events = t.stop();
    check_reject(&events, &reject);
    // Taken at the syscall's exit here; the tracer kept root, so the user side is named.
    check_reject_stacks(&events, &reject, true, false);
    assert!(kind(&events, "notify_posted", u(&notify["pid"])).is_empty());
    // Ring ops on the notification pipe are still seen: the reader's reads drained it.
    let ino = u(&notify["pipe_ino"]);
    assert!(
        kind(&events, "ring_op", u(&notify["pid"]))
            .iter()
            .any(|e| u(&e["ino"]) == ino && e["op"] == "read" && e["ret"].as_i64() > Some(0))
    );
    // The workload's notification pipe went with its process.
    let freed: Vec<_> = events
        .iter()
        .filter(|e| e["kind"] == "pipe_released" && u(&e["ino"]) == ino && e["op"] == "-")
        .collect();
    assert_eq!(freed.len(), 1, "{freed:?}");
    assert!(has_flag(freed[0], "notification_pipe"), "{freed:?}");
}

/// splice and tee waits on the pipe they wait for: timed by pipe_wait_readable/_writable's
/// hooks, and by sched_switch (the pipe's wait queues) where those are not hooked.
#[test]
fn splice_waits_by_hook_and_by_sched_switch() {
    in_vm();
    common::splice_waits::check(&[], "kfunc");
    common::splice_waits::check(&["--attach", "tracepoint"], "off_cpu");
}

/// Readers and writers of a contended pipe wait, the pipe mutex is contended, and the owners
/// named are the workload's own threads.
#[test]
fn contend_waits_and_mutex_owners() {
    in_vm();
    // A debug build formatting JSON in an emulated guest can fall behind six busy threads when
    // the host is loaded: it says how many events it lost, and a run that lost some proves
    // nothing either way, so up to three runs.
    let mut lossy = Vec::new();
    let (events, w) = loop {
        // Only the workload's threads (wq-writer-0, wq-reader-1, ...): an unfiltered trace of a
        // busy pipe is hundreds of MB of JSON, too much for the guest's memory.
        let t = Tracer::start(&["-c", "wq-"]);
        let w = workload(&["contend", "--threads", "6", "--duration", "1"]);
        let (events, lost) = t.stop_counting_lost();
        if lost == 0 {
            break (events, w);
        }
        eprintln!("the tracer lost {lost} events of a contend run: running it again");
        lossy.push(lost);
        assert!(
            lossy.len() < 3,
            "the tracer lost events in 3 runs: {lossy:?}"
        );
    };
    let pid = u(&w["pid"]);
    let ino = u(&w["pipe_ino"]);
    let tids = contend_tids(&w);
    let waits: Vec<&Value> = kind(&events, "pipe_wait", pid)
        .into_iter()
        .filter(|e| u(&e["ino"]) == ino)
        .collect();
    assert!(!waits.is_empty(), "no waits on the contended pipe");
    assert!(
        waits
            .iter()
            .all(|e| u(&e["duration_ns"]) > 0 && tids.contains(&u(&e["tid"])))
    );
    let contended: Vec<&Value> = kind(&events, "lock_contended", pid)
        .into_iter()
        .filter(|e| u(&e["ino"]) == ino && has_flag(e, "lock_mutex"))
        .collect();
    assert!(!contended.is_empty(), "no mutex contention seen");
    assert!(contended.iter().all(|e| u(&e["duration_ns"]) > 0));
    let owners: Vec<u64> = contended
        .iter()
        .map(|e| u(&e["owner_tid"]))
        .filter(|&o| o != 0)
        .collect();
    assert!(!owners.is_empty(), "no mutex owner recorded");
    for o in owners {
        assert!(
            tids.contains(&o),
            "owner {o} is not a workload thread {tids:?}"
        );
    }
}

/// `--pipe INODE` and `--notification-only` filter in the kernel.
#[test]
fn filters_run_in_kernel() {
    in_vm();
    let t = Tracer::start(&["--notification-only"]);
    let fentry = t.method("get_pipe_info") == "fentry";
    let w = workload(&["reject"]);
    let events = t.stop();
    // As root, the rejections' user stacks are named down to the workload's function.
    check_reject_stacks(&events, &w, true, fentry);
    let pid = u(&w["pid"]);
    let mine: Vec<&Value> = events.iter().filter(|e| u(&e["tgid"]) == pid).collect();
    assert!(!mine.is_empty());
    for e in &mine {
        assert!(
            has_flag(e, "notification_pipe"),
            "ordinary pipe event leaked: {e}"
        );
    }
}

/// `--pipe INO` keeps that pipe's events, posts included, and nothing of another notification
/// pipe posted into at the same time.
#[test]
fn pipe_filter_applies_to_posts_and_ops() {
    in_vm();
    // A notification pipe of the test's own (O_NOTIFICATION_PIPE == O_EXCL), watched on a key.
    let mut fds = [0i32; 2];
    assert_eq!(
        unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_EXCL | libc::O_NONBLOCK) },
        0
    );
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::fstat(fds[0], &mut st) }, 0);
    let ino = st.st_ino;
    let t = Tracer::start(&["--pipe", &ino.to_string()]);
    const IOC_WATCH_QUEUE_SET_SIZE: libc::c_ulong = 0x5760;
    const KEYCTL_UPDATE: libc::c_long = 2;
    const KEYCTL_WATCH_KEY: libc::c_long = 32;
    const KEY_SPEC_PROCESS_KEYRING: libc::c_long = -2;
    assert_eq!(
        unsafe { libc::ioctl(fds[0], IOC_WATCH_QUEUE_SET_SIZE, 32) },
        0
    );
    let payload = b"x";
    let key = unsafe {
        libc::syscall(
            libc::SYS_add_key,
            c"user".as_ptr(),
            c"wqtrace-pipe-filter".as_ptr(),
            payload.as_ptr(),
            payload.len(),
            KEY_SPEC_PROCESS_KEYRING,
        )
    };
    assert!(key > 0, "add_key: {}", std::io::Error::last_os_error());
    let watch = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_WATCH_KEY, key, fds[0], 3) };
    assert_eq!(watch, 0, "watch: {}", std::io::Error::last_os_error());
    for _ in 0..3 {
        let r = unsafe {
            libc::syscall(
                libc::SYS_keyctl,
                KEYCTL_UPDATE,
                key,
                payload.as_ptr(),
                payload.len(),
            )
        };
        assert_eq!(r, 0, "update: {}", std::io::Error::last_os_error());
    }
    let mut buf = [0u8; 4096];
    let got = unsafe { libc::read(fds[0], buf.as_mut_ptr().cast(), buf.len()) };
    assert_eq!(got, 3 * 16, "three 16-byte key notifications");
    let other = workload(&["race", "--posters", "2", "--updates", "50"]);
    let events = t.stop();
    unsafe {
        libc::close(fds[0]);
        libc::close(fds[1]);
    }
    let landed = events
        .iter()
        .filter(|e| e["kind"] == "notify_posted" && e["outcome"] == "landed")
        .count();
    assert_eq!(landed, 3, "posts into the filtered pipe");
    assert!(events.iter().any(|e| e["kind"] == "ring_op"), "our read");
    for e in &events {
        let i = u(&e["ino"]);
        assert!(i == 0 || i == ino, "event of another pipe: {e}");
        assert_ne!(i, u(&other["pipe_ino"]), "{e}");
    }
}

/// `doctor` on the watch_queue kernel: notification pipes work, fentry is used for every
/// kernel-function hook, and kprobes would work as the fallback.
#[test]
fn doctor_reports_fentry_kprobe_and_notification_pipes() {
    in_vm();
    let d = common::doctor_json();
    assert_eq!(d["notification_pipes"], true);
    // 6.12: direct loads, in the fentry and kprobe programs too; 6.1: probe reads.
    assert_eq!(d["kernel_reads"], common::kernel_reads_expected());
    let method = |plan: &str, hook: &str| common::plan_method(&d, plan, hook);
    for hook in [
        "notification_post",
        "get_pipe_info",
        "pipe_wait",
        "pipe_release",
    ] {
        assert_eq!(method("plan", hook), "fentry", "{hook}");
        assert_eq!(method("kprobe_fallback", hook), "kprobe", "{hook}");
    }
    assert_eq!(method("plan", "ring_ops"), "tp_btf");
}

/// A watcher that set up its notification pipe and blocked in read() before the session
/// began, then gets `POSTS` key updates: no syscall traced yet names its pipe.
const EARLY_WATCHER: &str = r#"
import ctypes, fcntl, os, sys, threading, time
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def sc(*a):
    r = libc.syscall(*[ctypes.c_long(x) if isinstance(x, int) else x for x in a])
    if r < 0:
        raise OSError(ctypes.get_errno(), "syscall %d" % a[0])
    return r
POSTS = 5
r, w = os.pipe2(0o200)                                 # O_NOTIFICATION_PIPE
fcntl.ioctl(r, 0x5760, 16)                             # IOC_WATCH_QUEUE_SET_SIZE
key = sc(248, b"user", b"wqtrace:early", b"v", 1, -2)  # add_key, process keyring
sc(250, 32, key, r, 9)                                 # KEYCTL_WATCH_KEY, watch id 9
reads = []
def reader():
    while len(reads) < POSTS:
        reads.append(len(os.read(r, 4096)))
t = threading.Thread(target=reader)
t.start()
time.sleep(0.2)
print("ino", os.fstat(r).st_ino, flush=True)
sys.stdin.readline()
for i in range(POSTS):
    sc(250, 2, key, b"u%d" % i, 2)                     # KEYCTL_UPDATE
    time.sleep(0.1)
t.join(10)
print("reads", len(reads), flush=True)
"#;

/// A post into a notification pipe that no traced syscall has named yet (its reader blocked
/// in read() since before the session) landed, and is reported landed in its slot, not lost:
/// the post hook walked the watch to that pipe, and the landing hook saw it land. Its inode
/// is unknown (0) until the reader's next read names the pipe.
#[test]
fn a_post_into_a_pipe_not_yet_named_is_reported_landed() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};
    in_vm();
    for attach in ["auto", "kprobe"] {
        let mut py = Command::new("python3")
            .args(["-c", EARLY_WATCHER])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut out = BufReader::new(py.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let ino: u64 = line
            .strip_prefix("ino ")
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("watcher: {line:?}"));
        let t = Tracer::start(&["--attach", attach]);
        writeln!(py.stdin.take().unwrap(), "go").unwrap();
        line.clear();
        out.read_line(&mut line).unwrap();
        assert!(py.wait().unwrap().success());
        assert_eq!(
            line.trim(),
            "reads 5",
            "{attach}: the watcher read every post"
        );
        let events = t.stop();
        let posts: Vec<&Value> = events
            .iter()
            .filter(|e| e["kind"] == "notify_posted" && e["tgid"] == py.id())
            .collect();
        let pipe = &posts
            .iter()
            .find(|e| u(&e["ino"]) == ino)
            .unwrap_or_else(|| panic!("{attach}: no post named pipe {ino}: {posts:?}"))["pipe"];
        let outcomes: Vec<(u64, &Value, &Value)> = posts
            .iter()
            .filter(|e| &e["pipe"] == pipe)
            .map(|e| (u(&e["ino"]), &e["outcome"], &e["slot"]))
            .collect();
        assert_eq!(outcomes.len(), 5, "{attach}: {outcomes:?}");
        for (i, (_, outcome, slot)) in outcomes.iter().enumerate() {
            assert_eq!(*outcome, "landed", "{attach}: post {i}: {outcomes:?}");
            assert_eq!(u(slot), i as u64, "{attach}: post {i}: {outcomes:?}");
        }
        // The first post came before any read named the pipe; the reads that followed did.
        assert_eq!(outcomes[0].0, 0, "{attach}: {outcomes:?}");
        assert!(
            outcomes[1..].iter().all(|o| o.0 == ino),
            "{attach}: {outcomes:?}"
        );
    }
}
