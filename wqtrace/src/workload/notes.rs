//! Records read from a notification pipe (`struct watch_notification`), decoded.

use serde::Serialize;

use super::sys::*;

/// One `struct watch_notification` record as read from a notification pipe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Note {
    pub r#type: u32,
    pub subtype: u32,
    pub watch_id: u32,
    /// Record length in bytes (info & WATCH_INFO_LENGTH).
    pub len: u32,
    /// Human name of type/subtype.
    pub name: &'static str,
    /// `struct key_notification`: the key affected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<u32>,
    /// `struct key_notification`: aux (the linked/unlinked key for LINKED/UNLINKED).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aux: Option<u32>,
    /// `struct watch_notification_removal`: the watched object's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removal_id: Option<u64>,
}

impl Note {
    pub fn is_loss(&self) -> bool {
        self.r#type == WATCH_TYPE_META && self.subtype == WATCH_META_LOSS_NOTIFICATION
    }
}

pub fn note_name(ty: u32, subtype: u32) -> &'static str {
    match (ty, subtype) {
        (WATCH_TYPE_META, WATCH_META_REMOVAL_NOTIFICATION) => "meta_removal",
        (WATCH_TYPE_META, WATCH_META_LOSS_NOTIFICATION) => "meta_loss",
        (WATCH_TYPE_KEY_NOTIFY, NOTIFY_KEY_INSTANTIATED) => "key_instantiated",
        (WATCH_TYPE_KEY_NOTIFY, NOTIFY_KEY_UPDATED) => "key_updated",
        (WATCH_TYPE_KEY_NOTIFY, NOTIFY_KEY_LINKED) => "key_linked",
        (WATCH_TYPE_KEY_NOTIFY, NOTIFY_KEY_UNLINKED) => "key_unlinked",
        (WATCH_TYPE_KEY_NOTIFY, NOTIFY_KEY_CLEARED) => "key_cleared",
        (WATCH_TYPE_KEY_NOTIFY, NOTIFY_KEY_REVOKED) => "key_revoked",
        (WATCH_TYPE_KEY_NOTIFY, NOTIFY_KEY_INVALIDATED) => "key_invalidated",
        (WATCH_TYPE_KEY_NOTIFY, NOTIFY_KEY_SETATTR) => "key_setattr",
        _ => "unknown",
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer than 8 bytes left for a header.
    Truncated { offset: usize },
    /// A header whose length is 0 or runs past the buffer.
    BadLength { offset: usize, len: u32 },
}

/// Decodes the records that one `read()` of a notification pipe returned.
pub fn decode_notes(buf: &[u8]) -> Result<Vec<Note>, DecodeError> {
    let u32_at = |o: usize| u32::from_ne_bytes(buf[o..o + 4].try_into().expect("4 bytes"));
    let mut out = Vec::new();
    let mut off = 0;
    while off < buf.len() {
        if buf.len() - off < 8 {
            return Err(DecodeError::Truncated { offset: off });
        }
        let w0 = u32_at(off);
        let info = u32_at(off + 4);
        // type:24 | subtype:8 as a little-endian bitfield: type is the low 24 bits.
        let ty = w0 & 0x00ff_ffff;
        let subtype = w0 >> 24;
        let len = info & WATCH_INFO_LENGTH;
        if len < 8 || off + len as usize > buf.len() {
            return Err(DecodeError::BadLength { offset: off, len });
        }
        let mut n = Note {
            r#type: ty,
            subtype,
            watch_id: (info & WATCH_INFO_ID) >> WATCH_INFO_ID_SHIFT,
            len,
            name: note_name(ty, subtype),
            key_id: None,
            aux: None,
            removal_id: None,
        };
        if ty == WATCH_TYPE_KEY_NOTIFY && len >= 16 {
            n.key_id = Some(u32_at(off + 8));
            n.aux = Some(u32_at(off + 12));
        }
        if ty == WATCH_TYPE_META && subtype == WATCH_META_REMOVAL_NOTIFICATION && len >= 16 {
            n.removal_id = Some(u64::from_ne_bytes(
                buf[off + 8..off + 16].try_into().expect("8 bytes"),
            ));
        }
        out.push(n);
        off += len as usize;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(ty: u32, subtype: u32, watch_id: u32, extra: &[u32]) -> Vec<u8> {
        let len = 8 + 4 * extra.len() as u32;
        let mut v = Vec::new();
        v.extend_from_slice(&(ty | (subtype << 24)).to_ne_bytes());
        v.extend_from_slice(&(len | (watch_id << 8)).to_ne_bytes());
        for e in extra {
            v.extend_from_slice(&e.to_ne_bytes());
        }
        v
    }

    #[test]
    fn decodes_key_notifications_and_meta() {
        let mut buf = rec(WATCH_TYPE_KEY_NOTIFY, NOTIFY_KEY_UPDATED, 7, &[1234, 0]);
        buf.extend(rec(
            WATCH_TYPE_KEY_NOTIFY,
            NOTIFY_KEY_LINKED,
            8,
            &[99, 1234],
        ));
        buf.extend(rec(WATCH_TYPE_META, WATCH_META_LOSS_NOTIFICATION, 0, &[]));
        buf.extend(rec(
            WATCH_TYPE_META,
            WATCH_META_REMOVAL_NOTIFICATION,
            8,
            &[99, 0],
        ));
        let n = decode_notes(&buf).unwrap();
        assert_eq!(n.len(), 4);
        assert_eq!(
            (n[0].r#type, n[0].subtype, n[0].watch_id, n[0].len),
            (1, 1, 7, 16)
        );
        assert_eq!(n[0].name, "key_updated");
        assert_eq!((n[0].key_id, n[0].aux), (Some(1234), Some(0)));
        assert_eq!(
            (n[1].name, n[1].key_id, n[1].aux),
            ("key_linked", Some(99), Some(1234))
        );
        assert!(n[2].is_loss());
        assert_eq!((n[2].len, n[2].key_id), (8, None));
        assert_eq!(
            (n[3].name, n[3].removal_id, n[3].watch_id),
            ("meta_removal", Some(99), 8)
        );
    }

    #[test]
    fn rejects_bad_lengths() {
        assert_eq!(
            decode_notes(&[0; 4]),
            Err(DecodeError::Truncated { offset: 0 })
        );
        let mut buf = rec(WATCH_TYPE_KEY_NOTIFY, NOTIFY_KEY_UPDATED, 7, &[1, 0]);
        buf.truncate(12);
        assert_eq!(
            decode_notes(&buf),
            Err(DecodeError::BadLength { offset: 0, len: 16 })
        );
        assert_eq!(
            decode_notes(&[0; 8]),
            Err(DecodeError::BadLength { offset: 0, len: 0 })
        );
        assert_eq!(decode_notes(&[]), Ok(vec![]));
    }

    #[test]
    fn queue_geometry_matches_watch_queue_set_size() {
        // 4 KiB pages hold 32 notes; the ring is the next power of two of the notes.
        assert_eq!(watch_queue_geometry(4, 4096), (1, 32, 32));
        assert_eq!(watch_queue_geometry(256, 4096), (8, 256, 256));
        assert_eq!(watch_queue_geometry(33, 4096), (2, 64, 64));
        assert_eq!(watch_queue_geometry(100, 4096), (4, 128, 128));
        assert_eq!(watch_queue_geometry(65, 4096), (3, 96, 128));
    }

    #[test]
    fn ioctl_numbers() {
        // _IO('W', 0x60) = (0 << 30) | ('W' << 8) | 0x60
        assert_eq!(
            IOC_WATCH_QUEUE_SET_SIZE,
            (b'W' as libc::c_ulong) << 8 | 0x60
        );
        assert_eq!(
            IOC_WATCH_QUEUE_SET_FILTER,
            (b'W' as libc::c_ulong) << 8 | 0x61
        );
        assert_eq!(O_NOTIFICATION_PIPE, 0o200);
    }
}
