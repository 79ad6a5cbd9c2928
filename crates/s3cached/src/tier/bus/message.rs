//! The bus's messages and their wire form: a kind byte and length-prefixed fields: `H id`
//! (heartbeat), `I id msg bucket key version` (invalidate one object), `B id msg count`
//! followed by `count` times `bucket key version` (invalidate several, at most
//! [`MAX_PER_MESSAGE`]), `A to msg from` (ack). The kind byte versions the format: a process
//! ignores kinds it does not know, and a write of one object still goes out as `I`, which every
//! release reads.

use crate::model::key::CacheKey;

/// The most objects one invalidation message names; a write of more sends several messages
/// (and waits for all of their acknowledgements at once), which bounds a message's size.
pub const MAX_PER_MESSAGE: usize = 1_000;

/// One object an invalidation names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// Version, for a versioned entry.
    pub version: Option<String>,
}

impl Named {
    /// The object `key` stands for.
    #[must_use]
    pub fn of(key: &CacheKey) -> Self {
        Self {
            bucket: key.bucket().to_owned(),
            key: key.key().to_owned(),
            version: key.version().map(str::to_owned),
        }
    }
}

/// A message on the bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// "I am alive."
    Heartbeat {
        /// Sender.
        from: String,
    },
    /// "Drop these objects."
    Invalidate {
        /// Sender.
        from: String,
        /// Sender's message number.
        id: u64,
        /// The objects, at least one and at most [`MAX_PER_MESSAGE`].
        objects: Vec<Named>,
    },
    /// "Dropped."
    Ack {
        /// The writer being answered.
        to: String,
        /// The writer's message number.
        id: u64,
        /// The peer answering.
        from: String,
    },
}

fn put(out: &mut Vec<u8>, field: &str) {
    out.extend_from_slice(field.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(field.as_bytes());
}

fn put_object(out: &mut Vec<u8>, object: &Named) {
    put(out, &object.bucket);
    put(out, &object.key);
    // "-" for none, "+version" for some: keeps an empty version id distinct.
    put(
        out,
        &object
            .version
            .as_ref()
            .map_or_else(|| "-".to_owned(), |v| format!("+{v}")),
    );
}

/// Reads length-prefixed fields off the front of a message.
struct Fields<'a> {
    rest: &'a [u8],
}

impl Fields<'_> {
    fn string(&mut self) -> Option<String> {
        let colon = self.rest.iter().position(|&b| b == b':')?;
        let len: usize = std::str::from_utf8(&self.rest[..colon]).ok()?.parse().ok()?;
        // The length comes from the wire: it may be anything up to usize::MAX.
        let start = colon.checked_add(1)?;
        let end = start.checked_add(len)?;
        let body = self.rest.get(start..end)?;
        let s = String::from_utf8(body.to_vec()).ok()?;
        self.rest = self.rest.get(end..)?;
        Some(s)
    }

    fn object(&mut self) -> Option<Named> {
        let bucket = self.string()?;
        let key = self.string()?;
        let version = match self.string()? {
            v if v == "-" => None,
            v => Some(v.strip_prefix('+')?.to_owned()),
        };
        Some(Named { bucket, key, version })
    }
}

impl Message {
    /// Wire form.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        match self {
            Self::Heartbeat { from } => {
                out.push(b'H');
                put(&mut out, from);
            }
            Self::Invalidate { from, id, objects } => {
                if objects.len() == 1 {
                    out.push(b'I');
                    put(&mut out, from);
                    put(&mut out, &id.to_string());
                } else {
                    out.push(b'B');
                    put(&mut out, from);
                    put(&mut out, &id.to_string());
                    put(&mut out, &objects.len().to_string());
                }
                for object in objects {
                    put_object(&mut out, object);
                }
            }
            Self::Ack { to, id, from } => {
                out.push(b'A');
                put(&mut out, to);
                put(&mut out, &id.to_string());
                put(&mut out, from);
            }
        }
        out
    }

    /// Parses the wire form; `None` for anything malformed (or of a kind this release does
    /// not know).
    #[must_use]
    pub fn decode(buf: &[u8]) -> Option<Self> {
        let (&kind, rest) = buf.split_first()?;
        let mut fields = Fields { rest };
        let msg = match kind {
            b'H' => Self::Heartbeat { from: fields.string()? },
            b'I' => {
                let from = fields.string()?;
                let id = fields.string()?.parse().ok()?;
                let objects = vec![fields.object()?];
                Self::Invalidate { from, id, objects }
            }
            b'B' => {
                let from = fields.string()?;
                let id = fields.string()?.parse().ok()?;
                let count: usize = fields.string()?.parse().ok()?;
                if !(1..=MAX_PER_MESSAGE).contains(&count) {
                    return None;
                }
                let objects = (0..count).map(|_| fields.object()).collect::<Option<Vec<_>>>()?;
                Self::Invalidate { from, id, objects }
            }
            b'A' => {
                let to = fields.string()?;
                let id = fields.string()?.parse().ok()?;
                Self::Ack {
                    to,
                    id,
                    from: fields.string()?,
                }
            }
            _ => return None,
        };
        fields.rest.is_empty().then_some(msg)
    }
}

/// The invalidation message naming `keys` (at most [`MAX_PER_MESSAGE`] of them).
pub(super) fn invalidation(from: &str, id: u64, keys: &[CacheKey]) -> Message {
    Message::Invalidate {
        from: from.to_owned(),
        id,
        objects: keys.iter().map(Named::of).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let msgs = [
            Message::Heartbeat { from: "abc".into() },
            Message::Invalidate {
                from: "abc".into(),
                id: 42,
                objects: vec![named("bkt", "a:b|c 12:{x}\n", None)],
            },
            Message::Invalidate {
                from: "a".into(),
                id: 1,
                objects: vec![named("b", "k", Some(""))],
            },
            Message::Invalidate {
                from: "a".into(),
                id: 2,
                objects: vec![
                    named("b", "k", Some("v1")),
                    named("b", "k", None),
                    named("c", "3:x", None),
                ],
            },
            Message::Ack {
                to: "abc".into(),
                id: 42,
                from: "def".into(),
            },
        ];
        for m in msgs {
            assert_eq!(Message::decode(&m.encode()), Some(m));
        }
    }

    fn named(bucket: &str, key: &str, version: Option<&str>) -> Named {
        Named {
            bucket: bucket.into(),
            key: key.into(),
            version: version.map(Into::into),
        }
    }

    #[test]
    fn one_object_keeps_the_single_invalidation_format() {
        let one = Message::Invalidate {
            from: "a".into(),
            id: 7,
            objects: vec![named("bkt", "k", None)],
        };
        // What releases that only know `I` send and read.
        assert_eq!(one.encode(), b"I1:a1:73:bkt1:k1:-");
    }

    #[test]
    fn a_batch_of_keys_goes_out_in_bounded_messages() {
        let keys: Vec<CacheKey> = (0..2_500)
            .map(|i| CacheKey::new("bkt", &format!("k{i}")).unwrap())
            .collect();
        let messages: Vec<Message> = keys
            .chunks(MAX_PER_MESSAGE)
            .enumerate()
            .map(|(i, chunk)| invalidation("me", i as u64, chunk))
            .collect();
        assert_eq!(messages.len(), 3);
        let mut seen = Vec::new();
        for m in &messages {
            let Some(Message::Invalidate { objects, .. }) = Message::decode(&m.encode()) else {
                panic!("undecodable: {m:?}");
            };
            assert!(objects.len() <= MAX_PER_MESSAGE);
            seen.extend(objects);
        }
        assert_eq!(seen, keys.iter().map(Named::of).collect::<Vec<_>>());
    }

    #[test]
    fn lengths_near_usize_max_are_rejected_without_panicking() {
        let max = usize::MAX;
        let near = [max, max - 1, max - 2, max / 2 + 1];
        for len in near {
            let crafted = [
                format!("H{len}:abc"),
                format!("A1:a1:1{len}:b"),
                format!("I1:a1:1{len}:bkt1:k1:-"),
                format!("I1:a1:13:bkt{len}:k1:-"),
                format!("B1:a1:1{len}:3:bkt1:k1:-"),
                format!("B1:a1:11:2{len}:bkt1:k1:-"),
            ];
            for bad in crafted {
                assert_eq!(Message::decode(bad.as_bytes()), None, "{bad}");
            }
        }
        // Longer than usize, counts outside a message's bounds, more objects claimed than sent.
        for bad in [
            "H99999999999999999999999:a",
            "B1:a1:11:0",
            "B1:a1:14:1001",
            "B1:a1:12:23:bkt1:k1:-",
        ] {
            assert_eq!(Message::decode(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn malformed_messages_are_rejected() {
        for bad in [&b""[..], b"X3:abc", b"H3:ab", b"H3:abcx", b"I1:a", b"A1:a2:xx1:b"] {
            assert_eq!(Message::decode(bad), None, "{bad:?}");
        }
    }
}
