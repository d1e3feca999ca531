//! A chunk body back into events, growing the same tables and defaults as the encoder did.

use wqtrace_common::{Event, EventKind};

use super::*;

fn string_ref(c: &mut Cursor, strings: &mut Vec<[u8; 16]>) -> DResult<[u8; 16]> {
    let i = c.varint()?;
    if let Some(s) = strings.get(i as usize) {
        return Ok(*s);
    }
    if i != strings.len() as u64 {
        return Err(DecodeError("bad string reference"));
    }
    let len = c.u8()? as usize;
    if len > 16 {
        return Err(DecodeError("string too long"));
    }
    let mut s = [0u8; 16];
    s[..len].copy_from_slice(c.bytes(len)?);
    strings.push(s);
    Ok(s)
}

/// One field of `e`: read when `present`, else its default (version 1's defaults for the ring
/// indices before the op and the fds differ: see the encoder). Long on purpose: one arm per
/// field bit, in a single table-like match.
#[allow(clippy::too_many_arguments)]
fn decode_field(
    c: &mut Cursor,
    e: &mut Event,
    bit: u32,
    present: bool,
    v1: bool,
    p: &PipeCtx,
    t: &TaskCtx,
    st: &State,
    tasks: &[(u32, u32, [u8; 16])],
    strings: &mut Vec<[u8; 16]>,
) -> DResult<()> {
    let k = e.kind as usize;
    let fd = |c: &mut Cursor| -> DResult<i32> {
        i32::try_from(c.zigzag()?).map_err(|_| DecodeError("fd out of range"))
    };
    let post = e.kind == EventKind::NotifyPosted as u8;
    match (bit, present) {
        (F_OP, true) => e.op = c.u8()?,
        (F_OP, false) => e.op = if v1 { st.last_op[k] } else { t.op[k % 16] },
        (F_FLAGS, true) => {
            let v = u16::try_from(c.varint()?).map_err(|_| DecodeError("flags out of range"))?;
            e.flags = if v1 {
                v
            } else {
                v.rotate_right(2) ^ t.flags[k % 16]
            }
        }
        (F_FLAGS, false) => {
            e.flags = if v1 {
                st.last_flags[k]
            } else {
                t.flags[k % 16]
            }
        }
        (F_RET, true) => e.ret = c.zigzag()?,
        (F_RET, false) => e.ret = State::default_ret(e, t, v1),
        (F_HEAD, true) => e.head = p.head.wrapping_add(c.d32()?),
        (F_HEAD, false) => e.head = p.head,
        (F_TAIL, true) => e.tail = p.tail.wrapping_add(c.d32()?),
        (F_TAIL, false) => e.tail = p.tail,
        (F_HEAD_BEFORE, true) if v1 => e.head_before = e.head.wrapping_sub(c.d32()?),
        (F_HEAD_BEFORE, true) => e.head_before = p.head.wrapping_add(c.d32()?),
        (F_HEAD_BEFORE, false) => e.head_before = if v1 { e.head } else { p.head },
        (F_TAIL_BEFORE, true) if v1 => e.tail_before = e.tail.wrapping_sub(c.d32()?),
        (F_TAIL_BEFORE, true) => e.tail_before = p.tail.wrapping_add(c.d32()?),
        (F_TAIL_BEFORE, false) => e.tail_before = if v1 { e.tail } else { p.tail },
        (F_CPU, true) => e.cpu = c.u32()?,
        (F_CPU, false) => e.cpu = t.cpu,
        (F_DURATION, true) => e.duration_ns = c.varint()?,
        (F_DURATION, false) => e.duration_ns = 0,
        (F_RING_SIZE, true) => e.ring_size = c.u32()?,
        (F_RING_SIZE, false) => e.ring_size = p.ring_size,
        (F_MAX_USAGE, true) => e.max_usage = c.u32()?,
        (F_MAX_USAGE, false) => e.max_usage = p.max_usage,
        (F_NR_NOTES, true) => e.nr_notes = c.u32()?,
        (F_NR_NOTES, false) => e.nr_notes = p.nr_notes,
        (F_NOTES_IN_USE, true) => e.notes_in_use = p.notes_in_use.wrapping_add(c.d32()?),
        (F_NOTES_IN_USE, false) => e.notes_in_use = p.notes_in_use,
        (F_SLOT, true) => e.slot = c.u32()?.wrapping_sub(1),
        (F_SLOT, false) => e.slot = State::default_slot(e),
        (F_NOTE, true) => e.note = c.u32()?.wrapping_sub(1),
        (F_NOTE, false) => e.note = u32::MAX,
        (F_NTYPE, true) => e.ntype = c.u32()?,
        (F_NTYPE, false) => e.ntype = if post { p.ntype } else { 0 },
        (F_SUBTYPE, true) => e.subtype = c.u32()?,
        (F_SUBTYPE, false) => e.subtype = if post { p.subtype } else { 0 },
        (F_INFO, true) => e.info = c.u32()?,
        (F_INFO, false) => e.info = if post { p.info } else { 0 },
        (F_FD_IN, true) => e.fd_in = fd(c)?,
        (F_FD_IN, false) => e.fd_in = if v1 { -1 } else { t.fd_in[fd_side(e)] },
        (F_FD_OUT, true) => e.fd_out = fd(c)?,
        (F_FD_OUT, false) => e.fd_out = if v1 { -1 } else { t.fd_out[fd_side(e)] },
        (F_LOCK, true) => e.lock = e.pipe.wrapping_add(c.zigzag()? as u64),
        (F_LOCK, false) => e.lock = 0,
        (F_OWNER, true) => {
            let r = if v1 { 0 } else { c.varint()? };
            if r == 0 {
                e.owner_tid = c.u32()?;
                e.owner_comm = string_ref(c, strings)?;
            } else {
                let &(tid, _, comm) = tasks
                    .get(r as usize - 1)
                    .ok_or(DecodeError("bad owner reference"))?;
                (e.owner_tid, e.owner_comm) = (tid, comm);
            }
        }
        (F_OWNER, false) => {}
        (F_CTX, true) => e.ctx = c.u8()?,
        (F_CTX, false) => e.ctx = t.ctx,
        _ => {}
    }
    Ok(())
}

/// Decodes the events of one chunk body. Long on purpose: the per-event loop mirrors the encoder's
/// `push` step by step (tables, references, defaults), which is what keeps the two in step.
pub fn decode_events(
    body: &[u8],
    count: u64,
    base_ts: u64,
    version: u32,
    out: &mut Vec<Event>,
) -> DResult<()> {
    let v1 = version < 2;
    let v3 = version >= 3;
    let all = if v3 { F_ALL_V3 } else { F_ALL };
    let mut c = Cursor::new(body);
    let mut st = State::new(base_ts);
    let mut pipes: Vec<(u64, u64)> = Vec::new();
    let mut tasks: Vec<(u32, u32, [u8; 16])> = Vec::new();
    let mut strings: Vec<[u8; 16]> = Vec::new();

    // `count` is of events read back: a ring op carrying its wait (format 6) is two.
    let mut left = count;
    while left > 0 {
        let mut e = Event::zeroed();
        let mut same_pipe = false;
        e.kind = c.u8()?;
        if !v1 {
            let head = e.kind;
            if head & !(KIND_ESCAPE | HEAD_SAME_PIPE) != 0 {
                return Err(DecodeError("bad event head"));
            }
            same_pipe = head & HEAD_SAME_PIPE != 0;
            e.kind = head & KIND_ESCAPE;
            if e.kind == KIND_ESCAPE {
                e.kind = c.u8()?;
            }
        }
        e.ts_ns = st.prev_ts.wrapping_add(c.zigzag()? as u64);
        let mut pipe_ref = |c: &mut Cursor, st: &mut State| -> DResult<usize> {
            let i = c.varint()?;
            if (i as usize) < pipes.len() {
                Ok(i as usize)
            } else if i == pipes.len() as u64 {
                let addr = c.varint()?;
                let ino = c.varint()?;
                pipes.push((addr, ino));
                st.pipes.push(PipeCtx::default());
                Ok(pipes.len() - 1)
            } else {
                Err(DecodeError("bad pipe reference"))
            }
        };
        let v1_pipe = if v1 {
            Some(pipe_ref(&mut c, &mut st)?)
        } else {
            None
        };
        let i = c.varint()?;
        let task = if (i as usize) < tasks.len() {
            i as usize
        } else if i == tasks.len() as u64 {
            let tid = c.u32()?;
            let tgid = c.u32()?;
            let comm = string_ref(&mut c, &mut strings)?;
            tasks.push((tid, tgid, comm));
            st.tasks.push(TaskCtx::default());
            tasks.len() - 1
        } else {
            return Err(DecodeError("bad task reference"));
        };
        let pipe = match v1_pipe {
            Some(p) => p,
            None if same_pipe => st.tasks[task].pipe,
            None => pipe_ref(&mut c, &mut st)?,
        };
        let &(addr, ino) = pipes.get(pipe).ok_or(DecodeError("bad pipe reference"))?;
        (e.pipe, e.ino) = (addr, ino);
        (e.tid, e.tgid, e.comm) = tasks[task];
        let p = st.pipes[pipe];
        let t = st.tasks[task];

        let mask = c.varint()?;
        if mask > u64::from(all) {
            return Err(DecodeError("unknown field bits"));
        }
        let mask = mask as u32;
        let mask = if v1 {
            V1_BITS
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .fold(0, |m, (_, &b)| m | b)
        } else {
            mask
        };
        let order: &[u32; 24] = if v1 { &V1_BITS } else { &V2_ORDER };
        for &bit in order {
            decode_field(
                &mut c,
                &mut e,
                bit,
                mask & bit != 0,
                v1,
                &p,
                &t,
                &st,
                &tasks,
                &mut strings,
            )?;
        }
        if mask & F_PAD != 0 {
            if v3 {
                e._pad.copy_from_slice(c.bytes(3)?);
            } else {
                // Before version 3 these bytes were all padding: where the stack references
                // are now.
                let b = c.bytes(7)?;
                e._pad.copy_from_slice(&b[..3]);
                e.kstack = u16::from_le_bytes([b[3], b[4]]);
                e.ustack = u16::from_le_bytes([b[5], b[6]]);
            }
        }
        if mask & F_STACKS != 0 {
            e.kstack =
                u16::try_from(c.varint()?).map_err(|_| DecodeError("bad stack reference"))?;
            e.ustack =
                u16::try_from(c.varint()?).map_err(|_| DecodeError("bad stack reference"))?;
        }
        e.cgroup = if mask & F_CGROUP != 0 {
            c.varint()?
        } else {
            t.cgroup
        };
        st.after(&e, pipe, task);
        if e.carries_wait() {
            if left < 2 {
                return Err(DecodeError(
                    "a ring op with its wait past the chunk's count",
                ));
            }
            let (wait, op) = e.split_wait();
            out.extend([wait, op]);
            left -= 2;
        } else {
            out.push(e);
            left -= 1;
        }
    }
    if !c.is_empty() {
        return Err(DecodeError("trailing bytes after the last event"));
    }
    Ok(())
}
