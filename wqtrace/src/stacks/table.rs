//! Symbolized stacks by reference: what replay, report and export show on any machine.

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, RwLock},
};

use serde::{Deserialize, Serialize};
use wqtrace_common::{Event, stack_ref};

/// One stack map entry. A user stack's addresses mean something only in its process, so the
/// process is part of the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StackKey {
    pub user: bool,
    /// The process (user stacks); 0 for kernel stacks.
    pub tgid: u32,
    /// The stack map id.
    pub id: u32,
}

impl StackKey {
    /// The key of `e`'s kernel (`user` false) or user stack, if it names a stored one.
    pub fn of(e: &Event, user: bool) -> Option<Self> {
        Self::from_ref(if user { e.ustack } else { e.kstack }, user, e.tgid)
    }

    /// The keys of `e`'s kernel and user stacks that name stored ones.
    pub fn of_both(e: &Event) -> impl Iterator<Item = Self> {
        [Self::of(e, false), Self::of(e, true)]
            .into_iter()
            .flatten()
    }

    /// The key a reference names (`tgid`: the process of a user stack).
    pub fn from_ref(r: u16, user: bool, tgid: u32) -> Option<Self> {
        Some(Self {
            user,
            tgid: if user { tgid } else { 0 },
            id: stack_ref::id(r)?,
        })
    }
}

/// One return address, with its symbol when one was found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    pub addr: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Bytes past the symbol's start.
    #[serde(default)]
    pub offset: u64,
    /// Kernel module or user binary (file name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
}

impl Frame {
    /// An address with no symbol found (`module`: the file it is in, if known).
    pub fn unnamed(addr: u64, module: Option<String>) -> Self {
        Self {
            addr,
            name: None,
            offset: 0,
            module,
        }
    }
}

impl fmt::Display for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(n) => write!(f, "{n}+{:#x}", self.offset)?,
            None => write!(f, "{:#x}", self.addr)?,
        }
        if let Some(m) = &self.module {
            write!(f, " [{m}]")?;
        }
        Ok(())
    }
}

/// A call stack, innermost frame first. `error` says why it is empty or unnamed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stack {
    pub frames: Vec<Frame>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Stack {
    pub fn unknown(why: impl Into<String>) -> Self {
        Self {
            frames: Vec::new(),
            error: Some(why.into()),
        }
    }

    /// The frames as text, innermost first.
    pub fn lines(&self) -> Vec<String> {
        if self.frames.is_empty() {
            return vec![format!(
                "unknown ({})",
                self.error.as_deref().unwrap_or("no frames")
            )];
        }
        self.frames.iter().map(Frame::to_string).collect()
    }

    /// The innermost named frames, for one-line summaries.
    pub fn summary(&self, n: usize) -> String {
        let l = self.lines();
        l.iter().take(n).cloned().collect::<Vec<_>>().join(" ← ")
    }
}

/// The stacks a session or recording has met, in the order it met them (a recording writes
/// the new ones before the events that name them).
#[derive(Debug, Default)]
pub struct StackTable {
    entries: Vec<(StackKey, Arc<Stack>)>,
    index: HashMap<StackKey, usize>,
}

/// The table a source fills and its sinks read.
pub type SharedStacks = Arc<RwLock<StackTable>>;

pub fn shared() -> SharedStacks {
    Arc::default()
}

impl StackTable {
    pub fn contains(&self, k: &StackKey) -> bool {
        self.index.contains_key(k)
    }

    pub fn insert(&mut self, k: StackKey, s: Stack) {
        if !self.index.contains_key(&k) {
            self.index.insert(k, self.entries.len());
            self.entries.push((k, Arc::new(s)));
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries from the `n`th on (what a writer has not written yet).
    pub fn since(&self, n: usize) -> &[(StackKey, Arc<Stack>)] {
        self.entries.get(n..).unwrap_or(&[])
    }

    /// `e`'s kernel (`user` false) or user stack: None when it asked for none.
    pub fn of(&self, e: &Event, user: bool) -> Option<Arc<Stack>> {
        let r = if user { e.ustack } else { e.kstack };
        self.get(r, user, e.tgid)
    }

    /// The stack a reference names (`tgid`: the process of a user stack).
    pub fn get(&self, r: u16, user: bool, tgid: u32) -> Option<Arc<Stack>> {
        match r {
            stack_ref::NONE => None,
            stack_ref::FAILED => Some(Arc::new(Stack::unknown(
                "the kernel did not take it (no frames to walk, or the stack map out of room)",
            ))),
            stack_ref::COLLIDED => Some(Arc::new(Stack::unknown(
                "the kernel's stack map holds another stack under the same hash, and keeps it",
            ))),
            stack_ref::SKIPPED => Some(Arc::new(Stack::unknown(format!(
                "not taken: this CPU had taken its {} stacks of this kind this second",
                stack_ref::PER_CPU_PER_SEC
            )))),
            _ => {
                let k = StackKey::from_ref(r, user, tgid)?;
                Some(self.index.get(&k).map_or_else(
                    || Arc::new(Stack::unknown("not in this session's stack table")),
                    |&i| self.entries[i].1.clone(),
                ))
            }
        }
    }
}

/// A stack table chunk of a recording: new entries, in order.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct StackChunk {
    pub stacks: Vec<(StackKey, Stack)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_resolve_through_the_table() {
        let mut t = StackTable::default();
        let mut e = Event::zeroed();
        e.tgid = 7;
        assert!(t.of(&e, false).is_none());
        e.kstack = 3; // id 2
        e.ustack = stack_ref::FAILED;
        assert!(t.of(&e, false).unwrap().error.is_some());
        let s = Stack {
            frames: vec![Frame {
                addr: 0x10,
                name: Some("pipe_read".into()),
                offset: 4,
                module: None,
            }],
            error: None,
        };
        t.insert(
            StackKey {
                user: false,
                tgid: 0,
                id: 2,
            },
            s.clone(),
        );
        assert_eq!(*t.of(&e, false).unwrap(), s);
        assert_eq!(t.of(&e, false).unwrap().lines(), ["pipe_read+0x4"]);
        assert!(t.of(&e, true).unwrap().lines()[0].starts_with("unknown ("));
        assert_eq!(t.since(0).len(), 1);
        assert!(t.since(1).is_empty());
    }

    #[test]
    fn each_reason_a_stack_is_unknown_is_its_own() {
        let t = StackTable::default();
        let why = |r| t.get(r, true, 7).unwrap().error.clone().unwrap();
        let reasons = [
            why(stack_ref::FAILED),
            why(stack_ref::SKIPPED),
            why(stack_ref::COLLIDED),
            why(5),
        ];
        assert!(reasons[2].contains("same hash"), "{reasons:?}");
        for (i, a) in reasons.iter().enumerate() {
            assert!(reasons[i + 1..].iter().all(|b| a != b), "{reasons:?}");
        }
        assert_eq!(stack_ref::id(stack_ref::COLLIDED), None);
        assert_eq!(
            stack_ref::id(stack_ref::MAX_ENTRIES as u16),
            Some(stack_ref::MAX_ENTRIES - 1)
        );
    }
}
