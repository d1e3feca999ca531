//! What a user sees in `wqtrace tui` / `wqtrace replay`, from hand-made event sequences drawn on
//! ratatui's TestBackend. Assertions are facts on screen (substrings, cell symbols and colours),
//! not whole-screen snapshots.

mod common;

use std::time::Duration;

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::Color;
use wqtrace::model::Model;
use wqtrace::recording::fixtures::session_meta;
use wqtrace::recording::fixtures::{
    self, Builder, CONSUMER, NPIPE, NPIPE_INO, PIPE_INO, POSTER, READER, SPLICER, WRITER,
};
use wqtrace::recording::{Header, encode_to_vec};
use wqtrace::sinks::tui::app::App;
use wqtrace::sinks::tui::ui;
use wqtrace::sinks::tui::view::{Mode, View};
use wqtrace::sinks::tui::widgets::header::NO_NOTIF_HINT;
use wqtrace::sinks::tui::{Feed, LiveFeed, ReplayFeed};
use wqtrace::source::SessionMeta;
use wqtrace::source::file::VecSource;
use wqtrace::source::replay::Replay;
use wqtrace_common::{Event, EventKind, Op, flags};

fn draw(v: &View, app: &mut App, w: u16, h: u16) -> Buffer {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| ui::draw(f, v, app)).unwrap();
    t.backend().buffer().clone()
}

fn lines(b: &Buffer) -> Vec<String> {
    let a = b.area;
    (0..a.height)
        .map(|y| (0..a.width).map(|x| b[(x, y)].symbol()).collect())
        .collect()
}

fn screen(b: &Buffer) -> String {
    lines(b).join("\n")
}

/// (x, y) of the first occurrence of `s` on screen.
fn find(b: &Buffer, s: &str) -> Option<(u16, u16)> {
    for (y, l) in lines(b).iter().enumerate() {
        if let Some(byte) = l.find(s) {
            let x = l[..byte].chars().count();
            return Some((x as u16, y as u16));
        }
    }
    None
}

fn row_of(b: &Buffer, s: &str) -> String {
    let (_, y) = find(b, s).unwrap_or_else(|| panic!("{s:?} not on screen:\n{}", screen(b)));
    lines(b)[y as usize].clone()
}

/// The fixture session up to (not including) the releases: both pipes live.
fn session_events() -> Vec<Event> {
    let evs = fixtures::notification_session();
    evs[..evs.len() - 3].to_vec()
}

fn model_of(evs: &[Event]) -> Model {
    let mut m = Model::default();
    for e in evs {
        m.apply(e);
    }
    m
}

fn live_view<'a>(m: &'a Model, meta: &'a SessionMeta) -> View<'a> {
    View {
        model: m,
        meta,
        mode: Mode::Live,
        now_ns: m.now_ns(),
        behind: 0,
        cost: None,
        stacks: None,
        cgroups: None,
    }
}

#[test]
fn notification_pipe_first_and_marked_with_its_numbers() {
    let m = model_of(&session_events());
    let meta = session_meta("6.12.8", true);
    let b = draw(&live_view(&m, &meta), &mut App::new(false), 80, 24);
    let s = screen(&b);
    // Table: header, then the notification pipe first, marked, then the ordinary pipe.
    let (_, hy) = find(&b, "PROCESSES").expect(&s);
    let (_, ny) = find(&b, &format!("◆{NPIPE_INO}")).expect(&s);
    let (_, py) = find(&b, &format!(" {PIPE_INO}")).expect(&s);
    assert_eq!(ny, hy + 1, "notification pipe is the first row\n{s}");
    assert!(py > ny);
    let row = row_of(&b, &format!("◆{NPIPE_INO}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    // ◆INO, owners, size, occupancy now, notes in use / nr_notes, posted, lost, rejected.
    assert_eq!(cols[0], format!("◆{NPIPE_INO}"), "{row}");
    assert_eq!(cols[1], "wq-reader/4100", "{row}");
    assert_eq!(cols[2], "+1", "two processes used it: {row}");
    assert_eq!(&cols[3..9], ["4", "0", "0/32", "5", "1", "2"], "{row}");
    let row = row_of(&b, &format!(" {PIPE_INO}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        &cols[..6],
        [&PIPE_INO.to_string(), "producer/4400", "+1", "8", "0", "-"]
    );
    // The selected (first) pipe's ring, and its lock picture.
    assert!(
        s.contains(&format!("Ring ◆ pipe:[{NPIPE_INO}] notification pipe")),
        "{s}"
    );
    assert!(s.contains("mutex"), "{s}");
    // Header: kernel, attach methods grouped, lost 0 in green.
    assert!(s.contains("kernel 6.12.8"), "{s}");
    assert!(s.contains("fentry: post"), "{s}");
    assert!(s.contains("n/a: wait"), "{s}");
    let (x, y) = find(&b, "lost 0").unwrap();
    assert_eq!(b[(x, y)].fg, Color::Green);
    assert!(!s.contains("cargo xtask demo"), "{s}");
    // Footer keys.
    let last = lines(&b).pop().unwrap();
    for k in [
        "q quit",
        "p pause",
        "/ filter",
        "s sort",
        "? help",
        "Tab focus",
    ] {
        assert!(last.contains(k), "{k}: {last}");
    }
}

/// A notification pipe seen only through posts, before any syscall named it, has no inode
/// yet: the table and the ring panel say so, not "inode 0".
#[test]
fn a_pipe_without_its_inode_is_not_shown_as_inode_0() {
    let posts: Vec<Event> = session_events()
        .into_iter()
        .filter(|e| e.pipe == NPIPE && e.kind() == Some(wqtrace_common::EventKind::NotifyPosted))
        .map(|mut e| {
            e.ino = 0;
            e
        })
        .collect();
    assert!(!posts.is_empty());
    let m = model_of(&posts);
    let meta = session_meta("6.12.8", true);
    let s = screen(&draw(&live_view(&m, &meta), &mut App::new(false), 80, 24));
    assert!(s.contains("◆? "), "{s}");
    assert!(!s.contains("◆0 "), "{s}");
    assert!(s.contains(&format!("Ring ◆ pipe@{NPIPE:#x}")), "{s}");
}

#[test]
fn rejected_splice_in_alerts_and_no_interleave_for_a_reader() {
    let m = model_of(&session_events());
    let meta = session_meta("6.12.8", true);
    let b = draw(&live_view(&m, &meta), &mut App::new(false), 100, 30);
    let s = screen(&b);
    assert!(s.contains("rejected 2"), "{s}");
    assert!(s.contains("interleaves 0"), "{s}");
    // Newest first: the tee above the splice.
    let tee = row_of(&b, " tee ");
    assert!(tee.contains("4300 splicer fd -→- EINVAL"), "{tee}");
    let splice = row_of(&b, " splice ");
    assert!(
        splice.contains(&format!("4300 splicer fd 3→- EINVAL pipe:[{NPIPE_INO}]")),
        "{splice}"
    );
    assert!(find(&b, " tee ").unwrap().1 < find(&b, " splice ").unwrap().1);
    // Relative time (no realtime offset in this session): +S.mmm since the first event.
    assert!(splice.contains("+0.00"), "{splice}");
    assert!(find(&b, "INTERLEAVE ").is_none(), "{s}");
}

/// A synthetic writer interleave (no mainline kernel lets a task write into a notification
/// pipe, so no test kernel produces one): a post lands between slots a mutex-holding write
/// itself wrote, and the alerts panel names it.
#[test]
fn interleave_of_a_writer_in_alerts() {
    let mut evs = session_events();
    let ts = evs.last().unwrap().ts_ns;
    let mut post = Event::zeroed();
    post.kind = EventKind::NotifyPosted as u8;
    post.op = Op::Post as u8;
    post.ts_ns = ts + 1;
    post.pipe = NPIPE;
    post.ino = NPIPE_INO;
    post.tid = POSTER.tid;
    post.tgid = POSTER.tid;
    post.flags = flags::NOTIFICATION_PIPE | flags::MUTEX_HELD;
    post.owner_tid = WRITER.tid;
    post.owner_comm = fixtures::comm(WRITER.comm);
    (post.head_before, post.head, post.ring_size) = (11, 12, 4);
    post.slot = 11 & 3;
    let mut write = Event::zeroed();
    write.kind = EventKind::RingOp as u8;
    write.op = Op::Write as u8;
    write.ts_ns = ts + 2;
    write.pipe = NPIPE;
    write.ino = NPIPE_INO;
    write.tid = WRITER.tid;
    write.tgid = WRITER.tid;
    write.flags = flags::NOTIFICATION_PIPE | flags::RING_DST;
    (write.head_before, write.head, write.ring_size) = (10, 13, 4);
    evs.extend([post, write]);
    let m = model_of(&evs);
    let meta = session_meta("6.12.8", true);
    let b = draw(&live_view(&m, &meta), &mut App::new(false), 100, 30);
    let s = screen(&b);
    assert!(s.contains("interleaves 1"), "{s}");
    let il = row_of(&b, "INTERLEAVE ");
    assert!(
        il.contains(&format!("slot 3 in {}/{} write×2", WRITER.comm, WRITER.tid)),
        "{il}"
    );
}

#[test]
fn lost_events_counter_is_red() {
    let mut m = model_of(&session_events());
    m.set_lost(17);
    let meta = session_meta("6.12.8", true);
    let b = draw(&live_view(&m, &meta), &mut App::new(false), 80, 24);
    let (x, y) = find(&b, "lost 17").unwrap_or_else(|| panic!("{}", screen(&b)));
    assert_eq!(b[(x, y)].fg, Color::Red);
    assert_eq!(y, 0, "in the header");
}

/// Sleeps the programs could not place on a wait queue are shown next to the lost events,
/// only when there are some.
#[test]
fn unplaced_sleeps_are_shown_when_there_are_some() {
    let mut m = model_of(&session_events());
    let meta = session_meta("6.18.0", true);
    let b = draw(&live_view(&m, &meta), &mut App::new(false), 100, 24);
    assert!(!screen(&b).contains("unplaced"), "{}", screen(&b));
    m.set_sleeps_unattributed(4);
    let b = draw(&live_view(&m, &meta), &mut App::new(false), 100, 24);
    let (x, y) = find(&b, "4 sleeps unplaced").unwrap_or_else(|| panic!("{}", screen(&b)));
    assert_eq!(b[(x, y)].fg, Color::Yellow);
    assert_eq!(y, 0, "in the header");
}

/// Past the pipes the programs keep in mind, a pipe's free may go unseen (and the pipe stay
/// listed): the header says so, only then.
#[test]
fn missed_frees_are_shown_past_the_programs_room() {
    use wqtrace::session::KnownPipes;
    let mut m = model_of(&session_events());
    let meta = session_meta("6.18.0", true);
    for (peak, shown) in [(None, false), (Some(16384), false), (Some(16385), true)] {
        m.set_known_pipes(peak.map(|peak| KnownPipes { peak, room: 16384 }));
        let b = draw(&live_view(&m, &meta), &mut App::new(false), 120, 24);
        let at = find(&b, "frees may be missed");
        assert_eq!(at.is_some(), shown, "{peak:?}\n{}", screen(&b));
        if let Some((x, y)) = at {
            assert_eq!(b[(x, y)].fg, Color::Yellow);
            assert_eq!(y, 0, "in the header");
        }
    }
}

#[test]
fn no_notification_pipes_points_at_the_demo() {
    let m = model_of(&session_events());
    let meta = session_meta("6.18.0", false);
    let b = draw(&live_view(&m, &meta), &mut App::new(false), 80, 24);
    let s = screen(&b);
    assert!(
        s.contains(NO_NOTIF_HINT),
        "the whole hint fits 80 columns:\n{s}"
    );
    assert!(s.contains("cargo xtask demo"));
    assert!(find(&b, "cargo xtask demo").unwrap().1 < 3, "in the header");
}

/// A notification pipe of 4 slots: 4 posts fill it, a fifth is lost (loss flag on the last
/// slot), a read drains 2, 1 more post wraps to slot 0.
fn wrap_events() -> Vec<Event> {
    let mut b = Builder::default();
    let mut e = b.ev(
        0,
        EventKind::PipeCreated,
        Op::Pipe2,
        READER,
        NPIPE,
        NPIPE_INO,
    );
    e.flags |= flags::NOTIFICATION_PIPE;
    e.ring_size = 4;
    b.push(e);
    let post = |b: &mut Builder, hb: u32, tb: u32, loss: bool| {
        let mut e = b.ev(
            1_000,
            EventKind::NotifyPosted,
            Op::Post,
            POSTER,
            NPIPE,
            NPIPE_INO,
        );
        e.flags |= flags::NOTIFICATION_PIPE;
        (e.head_before, e.tail_before, e.tail, e.ring_size) = (hb, tb, tb, 4);
        e.nr_notes = 32;
        if loss {
            e.flags |= flags::LOSS | flags::RING_FULL;
            e.head = hb;
        } else {
            e.head = hb + 1;
            e.slot = hb % 4;
            e.ntype = 1;
        }
        b.push(e);
    };
    for i in 0..4 {
        post(&mut b, i, 0, false);
    }
    post(&mut b, 4, 0, true);
    let mut e = b.ev(1_000, EventKind::RingOp, Op::Read, READER, NPIPE, NPIPE_INO);
    e.flags |= flags::NOTIFICATION_PIPE;
    (e.head_before, e.head, e.tail_before, e.tail, e.ring_size) = (4, 4, 0, 2, 4);
    e.ret = 32;
    b.push(e);
    post(&mut b, 4, 2, false);
    b.events
}

#[test]
fn ring_slots_loss_mark_markers_and_wrap_around() {
    let m = model_of(&wrap_events());
    let meta = session_meta("6.12.8", true);
    let b = draw(&live_view(&m, &meta), &mut App::new(false), 80, 24);
    let s = screen(&b);
    // Slots 0..3: notification (wrapped post), empty (read), notification, loss-flagged
    // notification. 4 slots at 80 columns: 4 columns a cell.
    let (x, y) = find(&b, "███ ··· ███ !!! ").unwrap_or_else(|| panic!("{s}"));
    assert_eq!(b[(x, y)].fg, Color::Green);
    assert_eq!(b[(x + 12, y)].fg, Color::Red, "loss-flagged slot is red");
    // Markers under the row: tail at slot 2, head at slot 1 (5 & 3): T after H = wrapped.
    let markers = &lines(&b)[y as usize + 1];
    let col = |c: char| markers.chars().position(|m| m == c).unwrap() as u16;
    assert_eq!(col('H'), x + 4, "{markers}");
    assert_eq!(col('T'), x + 8, "{markers}");
    assert!(s.contains("occ 3/4"), "{s}");
    assert!(s.contains("T 2→2  H 5→1 wrapped"), "{s}");
    assert!(s.contains("1 loss-flagged"), "{s}");
    let row = row_of(&b, &format!("◆{NPIPE_INO}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cols[2..7], ["4", "3", "0/32", "5", "1"], "{row}");
}

/// An ordinary pipe resized to 256 slots, 200 written, 20 read.
fn big_ring_events() -> Vec<Event> {
    let mut b = Builder::default();
    let mut e = b.ev(
        0,
        EventKind::PipeCreated,
        Op::Pipe2,
        WRITER,
        NPIPE,
        NPIPE_INO,
    );
    e.ring_size = 256;
    b.push(e);
    let mut e = b.ev(
        1_000,
        EventKind::RingOp,
        Op::Write,
        WRITER,
        NPIPE,
        NPIPE_INO,
    );
    (e.head_before, e.head, e.tail_before, e.tail, e.ring_size) = (0, 200, 0, 0, 256);
    e.ret = 200 * 4096;
    b.push(e);
    let mut e = b.ev(
        1_000,
        EventKind::RingOp,
        Op::Read,
        CONSUMER,
        NPIPE,
        NPIPE_INO,
    );
    (e.head_before, e.head, e.tail_before, e.tail, e.ring_size) = (200, 200, 0, 20, 256);
    e.ret = 20 * 4096;
    b.push(e);
    b.events
}

#[test]
fn ring_of_256_slots_fits_80x24() {
    let m = model_of(&big_ring_events());
    let meta = session_meta("6.18.0", false);
    let b = draw(&live_view(&m, &meta), &mut App::new(false), 80, 24);
    let s = screen(&b);
    let l = lines(&b);
    // Four rows of 64 slots, each starting with its first slot index.
    let rows: Vec<&String> = l
        .iter()
        .filter(|r| {
            ["  0 ", " 64 ", "128 ", "192 "]
                .iter()
                .any(|p| r.starts_with(p))
        })
        .collect();
    assert_eq!(rows.len(), 4, "{s}");
    for (r, first) in rows.iter().zip(["  0 ", " 64 ", "128 ", "192 "]) {
        assert!(r.starts_with(first), "{r}");
    }
    let count = |c: char| {
        rows.iter()
            .map(|r| r.chars().filter(|&x| x == c).count())
            .sum::<usize>()
    };
    assert_eq!(count('▒'), 180, "{s}");
    assert_eq!(count('·'), 76, "{s}");
    assert!(s.contains("occ 180/256"), "{s}");
    // T under slot 20 (row 0), H under slot 200 (row 3, column 8).
    let t = l.iter().position(|r| r.trim() == "T").expect(&s);
    assert_eq!(l[t].chars().position(|c| c == 'T'), Some(4 + 20));
    let h = l.iter().position(|r| r.trim() == "H").expect(&s);
    assert_eq!(l[h].chars().position(|c| c == 'H'), Some(4 + 200 - 192));
    // And everything else is still on the 80×24 screen.
    assert!(s.contains("hist "), "{s}");
    assert!(s.contains("Locks & waits"), "{s}");
    assert!(s.contains("Rejections & alerts"), "{s}");
    assert!(s.contains("cargo xtask demo"), "{s}");
    assert!(l[23].contains("q quit"), "{s}");
    assert!(
        s.contains(&format!(" {NPIPE_INO} ")),
        "the table still shows the pipe\n{s}"
    );
}

#[test]
fn contended_mutex_and_waits_in_locks_panel() {
    let m = model_of(&session_events());
    let meta = session_meta("6.12.8", true);
    let b = draw(&live_view(&m, &meta), &mut App::new(false), 100, 30);
    let s = screen(&b);
    let mutex = row_of(&b, "mutex ");
    assert!(mutex.contains("mutex   wq-reader/4101"), "{mutex}");
    assert!(mutex.contains("ms ago"), "{mutex}");
    let c = row_of(&b, "1× contended");
    assert!(
        c.contains("1× contended worst 15µs wq-reader←splicer"),
        "{c}"
    );
    let rd = row_of(&b, "rd_wait ");
    assert!(rd.contains("rd_wait hold avg 890ns max 1.1µs"), "{rd}");
    let w = row_of(&b, "waits   ");
    assert!(w.contains("1× max 1.99ms"), "{w}");
    assert!(s.contains(&format!("{} splicer", SPLICER.tgid)), "{s}");
}

/// A released pipe stays in the table for a while (its end can be read), then leaves it for the
/// live ones, counted in the title; the filter still finds it.
#[test]
fn released_pipes_leave_the_table_after_a_while() {
    let mut b = Builder::default();
    let created = |b: &mut Builder, dt: u64, pipe: u64, ino: u64, notif: bool| {
        let mut e = b.ev(dt, EventKind::PipeCreated, Op::Pipe2, WRITER, pipe, ino);
        e.ring_size = 16;
        if notif {
            e.flags |= flags::NOTIFICATION_PIPE;
        }
        b.push(e);
    };
    created(&mut b, 0, 0xa000, 501, true);
    created(&mut b, 1_000, 0xb000, 502, false);
    // free_pipe_info (no op): the pipe itself is gone, not just one fd.
    let e = b.ev(
        1_000,
        EventKind::PipeReleased,
        Op::None,
        WRITER,
        0xa000,
        501,
    );
    b.push(e);
    let meta = session_meta("6.12.0", true);
    let mut app = App::default();

    // An 8-byte write into pipe 502, `dt` after the previous event, leaving head at `head`.
    let write = |b: &mut Builder, dt: u64, head: u32| {
        let mut e = b.ev(dt, EventKind::RingOp, Op::Write, WRITER, 0xb000, 502);
        (e.head, e.ring_size, e.ret) = (head, 16, 8);
        b.push(e);
    };

    // 5 s after the release: still listed, marked gone.
    write(&mut b, 5_000_000_000, 1);
    let m = model_of(&b.events);
    let s = draw(&live_view(&m, &meta), &mut app, 120, 30);
    assert!(row_of(&s, "◆501 ").contains("gone"), "{}", screen(&s));
    // Notification pipes first, released or not.
    assert!(find(&s, "◆501 ").unwrap().1 < find(&s, " 502 ").unwrap().1);

    // 11 s after: gone from the table, counted in its title; `/501` brings it back.
    write(&mut b, 6_000_000_000, 2);
    let m = model_of(&b.events);
    let s = draw(&live_view(&m, &meta), &mut app, 120, 30);
    assert!(find(&s, "◆501 ").is_none(), "{}", screen(&s));
    assert!(find(&s, " 502 ").is_some(), "{}", screen(&s));
    assert!(
        row_of(&s, " Pipes ").contains("(+1 released)"),
        "{}",
        screen(&s)
    );
    app.search = "501".into();
    let s = draw(&live_view(&m, &meta), &mut app, 120, 30);
    assert!(row_of(&s, "◆501 ").contains("gone"), "{}", screen(&s));
}

#[test]
fn filter_and_sort_show_in_the_table() {
    let m = model_of(&session_events());
    let meta = session_meta("6.12.8", true);
    let mut app = App::new(false);
    app.search = "consumer".into();
    let b = draw(&live_view(&m, &meta), &mut app, 80, 24);
    let s = screen(&b);
    assert!(s.contains("filter:consumer"), "{s}");
    assert!(find(&b, &format!("◆{NPIPE_INO}")).is_none(), "{s}");
    assert!(s.contains(&format!(" {PIPE_INO} ")), "{s}");
    assert!(s.contains(&format!("Ring pipe:[{PIPE_INO}]")), "{s}");
    app.search = "nothing-like-this".into();
    let s = screen(&draw(&live_view(&m, &meta), &mut app, 80, 24));
    assert!(s.contains("no pipe matches the filter"), "{s}");
    let mut app = App::new(false);
    app.show_help = true;
    let s = screen(&draw(&live_view(&m, &meta), &mut app, 80, 24));
    assert!(s.contains("keys — any key closes"), "{s}");
}

#[test]
fn help_and_empty_model_at_80x24() {
    let m = Model::default();
    let meta = session_meta("6.18.0", false);
    let s = screen(&draw(&live_view(&m, &meta), &mut App::new(false), 80, 24));
    assert!(s.contains("no pipe traced yet"), "{s}");
    assert!(s.contains("lost 0"), "{s}");
}

/// The live feed over an in-memory source and the replay engine over the same events as a
/// recording end up showing the same facts.
#[test]
fn replay_shows_what_live_showed() {
    let evs = session_events();
    let mut meta = session_meta("6.12.8", true);
    meta.realtime_offset_ns = 0;

    let mut live = LiveFeed::new(
        VecSource::new(meta.clone(), evs.clone(), 7, 3),
        Default::default(),
    );
    live.clock = Some(evs.last().unwrap().ts_ns);
    while live.drain(Duration::ZERO).unwrap() > 0 {}
    let live_screen = {
        let v = live.view().unwrap();
        screen(&draw(&v, &mut App::new(false), 100, 30))
    };

    let dir = common::Scratch::new("tui");
    let path = dir.join("session.wqt");
    let header = Header {
        meta: meta.clone(),
        ..Header::default()
    };
    std::fs::write(&path, encode_to_vec(&header, &evs, 3)).unwrap();
    let mut r = Replay::open(&path, Default::default()).unwrap();
    r.run_to_end().unwrap();
    let mut feed = ReplayFeed { replay: r };
    let mut app = App::new(true);
    let b = {
        let v = feed.view().unwrap();
        draw(&v, &mut app, 100, 30)
    };
    let replay_screen = screen(&b);

    for s in [&live_screen, &replay_screen] {
        assert!(s.contains(&format!("◆{NPIPE_INO}")), "{s}");
        assert!(s.contains("lost 3"), "{s}");
        assert!(s.contains("4300 splicer fd 3→- EINVAL"), "{s}");
        assert!(s.contains("interleaves 0"), "{s}");
        assert!(s.contains("1× contended"), "{s}");
    }
    // Everything below the header (table, ring, panels) is identical.
    let body = |s: &str| s.lines().skip(2).collect::<Vec<_>>().join("\n");
    let footer_free = |s: String| s.rsplit_once('\n').unwrap().0.to_string();
    assert_eq!(
        footer_free(body(&live_screen)),
        footer_free(body(&replay_screen))
    );
    // The replay header tells the position and speed.
    assert!(
        replay_screen.lines().next().unwrap().contains("REPLAY end"),
        "{replay_screen}"
    );
    assert!(
        replay_screen.lines().last().unwrap().contains("n step"),
        "{replay_screen}"
    );
}

/// Replay keys drive the engine: seek back to the start, step one event, speed.
#[test]
fn replay_keys_drive_the_engine() {
    use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    let evs = fixtures::notification_session();
    let dir = common::Scratch::new("tui-keys");
    let path = dir.join("s.wqt");
    let header = Header {
        meta: session_meta("6.12.8", true),
        ..Header::default()
    };
    std::fs::write(&path, encode_to_vec(&header, &evs, 0)).unwrap();
    let mut feed = ReplayFeed {
        replay: Replay::open(&path, Default::default()).unwrap(),
    };
    drop(dir);
    let mut app = App::new(true);
    let key = |feed: &mut ReplayFeed, app: &mut App, c: KeyCode| {
        let a = {
            let v = feed.view().unwrap();
            app.on_key(KeyEvent::new(c, KeyModifiers::NONE), v.model)
        };
        feed.act(a, app).unwrap();
    };
    key(&mut feed, &mut app, KeyCode::Char('n'));
    assert!(app.paused, "step pauses");
    assert_eq!(feed.replay.applied(), 1);
    key(&mut feed, &mut app, KeyCode::Char('n'));
    assert_eq!(feed.replay.applied(), 2);
    key(&mut feed, &mut app, KeyCode::Char(']'));
    assert_eq!(
        feed.replay.applied(),
        evs.len() as u64,
        "+10 s passes the end"
    );
    key(&mut feed, &mut app, KeyCode::Char('['));
    assert_eq!(
        feed.replay.applied(),
        1,
        "-10 s back at the start: the first event"
    );
    key(&mut feed, &mut app, KeyCode::Char('+'));
    key(&mut feed, &mut app, KeyCode::Char('+'));
    assert_eq!(feed.replay.speed(), 4.0);
    key(&mut feed, &mut app, KeyCode::Char('p'));
    assert!(!app.paused && !feed.replay.is_paused());
    let s = screen(&draw(&feed.view().unwrap(), &mut app, 80, 24));
    assert!(s.contains("×4"), "{s}");
}

/// Live: what tracing costs sits beside the attach methods, on its own line where it does not
/// fit (80 columns); unknown BPF cost says so instead of 0 %.
#[test]
fn tracing_cost_in_the_header() {
    use wqtrace::cost::{BpfRates, Rates};
    let m = model_of(&session_events());
    let meta = session_meta("6.12.8", true);
    let mut v = live_view(&m, &meta);
    let known = Rates {
        secs: 1.0,
        bpf: Some(BpfRates {
            runs_per_sec: 1e5,
            cpu_frac: 0.021,
            ns_per_run: Some(310.0),
        }),
        bpf_off: false,
        self_cpu_frac: 0.03,
        rss_bytes: 41 << 20,
    };
    v.cost = Some(known);
    let wide = draw(&v, &mut App::new(false), 160, 24);
    let (_, y) = find(
        &wide,
        "cost BPF 2.1% CPU 310 ns/run · wqtrace 3.0% CPU 41 MiB",
    )
    .unwrap_or_else(|| panic!("{}", screen(&wide)));
    assert_eq!(y, 1, "beside the attach line");
    let narrow = draw(&v, &mut App::new(false), 80, 24);
    let (_, y) = find(
        &narrow,
        "cost BPF 2.1% CPU 310 ns/run · wqtrace 3.0% CPU 41 MiB",
    )
    .unwrap_or_else(|| panic!("{}", screen(&narrow)));
    assert_eq!(y, 2, "a line of its own at 80 columns");
    assert!(
        find(&narrow, "Pipes").unwrap().1 == 3,
        "{}",
        screen(&narrow)
    );
    v.cost = Some(Rates { bpf: None, ..known });
    let unknown = draw(&v, &mut App::new(false), 160, 24);
    assert!(
        find(&unknown, "cost BPF cost unknown").is_some(),
        "{}",
        screen(&unknown)
    );
    assert!(!screen(&unknown).contains("BPF 0.0%"));
}

/// Tab to the alerts, Enter: the top alert (the newest rejection, the tee) opens with its
/// kernel and user stacks by name; any key closes it. Without a stack table it says none was
/// taken.
#[test]
fn enter_on_an_alert_shows_its_stacks() {
    use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    use wqtrace::stacks::{Frame, Stack, StackKey};
    let mut evs = session_events();
    for e in evs
        .iter_mut()
        .filter(|e| e.kind == EventKind::SpliceRejected as u8)
    {
        e.kstack = 1;
        e.ustack = 2;
    }
    let tgid = evs
        .iter()
        .find(|e| e.kind == EventKind::SpliceRejected as u8)
        .unwrap()
        .tgid;
    let m = model_of(&evs);
    let meta = session_meta("6.12.8", true);
    let table = wqtrace::stacks::shared();
    let frame = |n: &str| Frame {
        addr: 0x1000,
        name: Some(n.into()),
        offset: 5,
        module: None,
    };
    table.write().unwrap().insert(
        StackKey {
            user: false,
            tgid: 0,
            id: 0,
        },
        Stack {
            frames: vec![frame("get_pipe_info"), frame("__do_sys_tee")],
            error: None,
        },
    );
    table.write().unwrap().insert(
        StackKey {
            user: true,
            tgid,
            id: 1,
        },
        Stack {
            frames: vec![frame("splicer::tee_it")],
            error: None,
        },
    );
    let mut v = live_view(&m, &meta);
    v.stacks = Some(table);
    let mut app = App::new(false);
    let key = |app: &mut App, c| app.on_key(KeyEvent::new(c, KeyModifiers::NONE), &m);
    key(&mut app, KeyCode::Tab);
    let b = draw(&v, &mut app, 80, 24);
    assert!(row_of(&b, " tee ").contains("▶"), "{}", screen(&b));
    // The footer says what Enter does, and still fits 80 columns.
    let footer = lines(&b).last().unwrap().clone();
    assert!(
        footer.contains("Enter stacks") && footer.contains("? help"),
        "{footer}"
    );
    key(&mut app, KeyCode::Enter);
    let b = draw(&v, &mut app, 100, 30);
    let s = screen(&b);
    assert!(s.contains("kernel stack:"), "{s}");
    assert!(s.contains("get_pipe_info+0x5"), "{s}");
    assert!(s.contains("__do_sys_tee+0x5"), "{s}");
    assert!(s.contains("splicer::tee_it+0x5"), "{s}");
    key(&mut app, KeyCode::Char('x'));
    let b = draw(&v, &mut app, 100, 30);
    assert!(!screen(&b).contains("kernel stack:"));
    // A session without stacks: the pane says so.
    v.stacks = None;
    key(&mut app, KeyCode::Enter);
    let s = screen(&draw(&v, &mut app, 100, 30));
    assert!(s.contains("none taken"), "{s}");
}

/// A terminal wide enough shows each pipe's cgroup (its first owner's), the path's end kept;
/// at 80 columns the processes keep the room.
#[test]
fn wide_terminal_shows_the_cgroup_column() {
    let mut evs = session_events();
    for e in &mut evs {
        e.cgroup = 77;
    }
    let m = model_of(&evs);
    let meta = session_meta("6.12.8", true);
    let names = wqtrace::cgroup::SharedCgroups::default();
    names.write().unwrap().insert(
        77,
        "/system.slice/very-long-unit-name-for-the-reader.service".into(),
    );
    let mut v = live_view(&m, &meta);
    v.cgroups = Some(names);
    let b = draw(&v, &mut App::new(false), 140, 30);
    let s = screen(&b);
    assert!(row_of(&b, "PIPE").contains("CGROUP"), "{s}");
    assert!(s.contains("reader.service"), "{s}");
    let b = draw(&v, &mut App::new(false), 80, 24);
    assert!(!row_of(&b, "PIPE").contains("CGROUP"));
}
