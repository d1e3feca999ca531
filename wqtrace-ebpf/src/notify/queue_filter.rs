//! A notification queue's filter (`watch_filter`), evaluated for the walked watches that did
//! not land, as `filter_watch_notification()` would: a post it drops is `filtered`, not lost.

use wqtrace_common::NO_OFFSET;

use super::{MAX_FILTERS, MAX_WATCHES, PostCtx, read_into};
use crate::globals::off;

/// For the walked watches that did not land: their queue's filter, as the return sees it.
/// `filtered` starts as "rejected" where a filter exists (the kernel's default) and
/// [`apply_filters`] clears it on a match. Everything lives in map memory (see there).
#[inline(always)]
pub(super) fn snap_filters(c: &mut PostCtx) {
    let (qo, to, no) = (off!(wq_filter), off!(wf_type_filter), off!(wf_nr_filters));
    if qo == NO_OFFSET || to == NO_OFFSET || no == NO_OFFSET {
        return;
    }
    let ty = (c.type_sub & 0x00ff_ffff) as u64;
    for i in 0..MAX_WATCHES {
        let en = &mut c.entries[i];
        en.wf = 0;
        en.nr_filters = 0;
        en.filtered = 0;
        if en.pipe == 0 || en.landed != 0 || en.direct != 0 {
            continue;
        }
        read_into(&mut en.wf, en.wq + qo as u64);
        if en.wf == 0 {
            continue;
        }
        en.filtered = 1;
        // type_filter is DECLARE_BITMAP(.., WATCH_TYPE__NR): one long.
        let mut tf: u64 = 0;
        read_into(&mut tf, en.wf + to as u64);
        if ty < 64 && (tf >> ty) & 1 != 0 {
            read_into(&mut en.nr_filters, en.wf + no as u64);
        }
    }
}

/// `filter_watch_notification(wf, n)` for every walked watch whose queue has a filter, with
/// n's id bits set to the watch's, as the kernel has them when it asks. One flat loop over
/// (watch, filter) pairs keeping its verdicts in map memory: nested loops with early returns
/// are more than 6.1's verifier will walk.
#[inline(always)]
pub(super) fn apply_filters(c: &mut PostCtx) {
    let (fo, size) = (off!(wf_filters), off!(wtf_size));
    let (to, so, io, mo) = (
        off!(wtf_type),
        off!(wtf_subtype_filter),
        off!(wtf_info_filter),
        off!(wtf_info_mask),
    );
    if fo == NO_OFFSET || size == NO_OFFSET || so == NO_OFFSET || size > 64 {
        return;
    }
    if (to | so | io | mo) >= 16 {
        return;
    }
    let ty = c.type_sub & 0x00ff_ffff;
    let sub = c.type_sub >> 24;
    for k in 0..(MAX_WATCHES as u32 * MAX_FILTERS) {
        let i = (k / MAX_FILTERS) as usize & (MAX_WATCHES - 1);
        let j = k % MAX_FILTERS;
        let en = &c.entries[i];
        if en.pipe == 0 || en.wf == 0 || j >= en.nr_filters {
            continue;
        }
        let wt = en.wf + fo as u64 + (j * size) as u64;
        let info = (c.info & !0xff00) | (en.info_id & 0xff00);
        // Into map memory, failed reads included: values the verifier cannot know keep it
        // from walking every combination of outcomes.
        let f = &mut c.filter_words;
        let mut one = [0u32; 4];
        read_into(&mut one, wt);
        f[0..4].copy_from_slice(&one);
        // subtype_filter[subtype / 32], as the kernel indexes it.
        read_into(&mut f[4], wt + so as u64 + (sub / 32) as u64 * 4);
        let word = |o: u32| f[(o / 4) as usize & 3];
        if word(to) == ty && f[4] & (1 << (sub % 32)) != 0 && info & word(mo) == word(io) {
            c.entries[i].filtered = 0;
        }
    }
}
