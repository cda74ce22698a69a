//! Domain names in uncompressed wire form, lower-cased (the canonical form of RFC 4034 §6.2),
//! with the canonical ordering of RFC 4034 §6.1 and a presentation form for messages.

use std::cmp::Ordering;
use std::fmt;

/// The most labels a 255-octet name can have (127 one-octet labels and the root).
const MAX_LABELS: usize = 128;

/// A domain name in canonical wire form: length-prefixed labels ending with the empty root
/// label, every ASCII letter lower-cased. Always well-formed (checked on construction).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Name(Box<[u8]>);

impl Name {
    /// The root name, `.`.
    pub fn root() -> Name {
        Name(Box::new([0]))
    }

    /// Reads a wire-format name at the start of `buf` (no compression pointers), lower-casing
    /// it; returns the name and the octets it took. `None` if it is malformed or too long.
    pub fn from_wire(buf: &[u8]) -> Option<(Name, usize)> {
        let mut i = 0usize;
        loop {
            let len = *buf.get(i)? as usize;
            if len > 63 {
                return None;
            }
            if i + 1 + len > 255 {
                return None;
            }
            if len == 0 {
                let mut v = buf.get(..=i)?.to_vec();
                v.make_ascii_lowercase_labels();
                return Some((Name(v.into_boxed_slice()), i + 1));
            }
            buf.get(i + 1..i + 1 + len)?;
            i += 1 + len;
        }
    }

    /// The wire octets (lower-cased).
    pub fn wire(&self) -> &[u8] {
        &self.0
    }

    /// True for `.`.
    pub fn is_root(&self) -> bool {
        self.0.len() == 1
    }

    /// The labels, left to right, without the root label.
    pub fn labels(&self) -> Labels<'_> {
        Labels { wire: &self.0 }
    }

    /// Number of labels, not counting the root (the RRSIG Labels field's count).
    pub fn label_count(&self) -> usize {
        self.labels().count()
    }

    /// True if `self` is `other` or below it.
    pub fn is_at_or_below(&self, other: &Name) -> bool {
        let n = self.label_count();
        let m = other.label_count();
        n >= m && *self.suffix(n - m) == other.0[..]
    }

    /// The wire form without the first `skip` labels.
    fn suffix(&self, skip: usize) -> &[u8] {
        let mut i = 0usize;
        for _ in 0..skip {
            i += 1 + self.0[i] as usize;
        }
        &self.0[i..]
    }

    /// The name with its first `skip` labels removed (`skip` ≤ label count).
    pub fn trim_left(&self, skip: usize) -> Name {
        Name(self.suffix(skip).to_vec().into_boxed_slice())
    }

    /// `*.` followed by `self`, the owner a wildcard RRSIG was made for.
    pub fn wildcard_of(&self) -> Option<Name> {
        if self.0.len() + 2 > 255 {
            return None;
        }
        let mut v = vec![1, b'*'];
        v.extend_from_slice(&self.0);
        Some(Name(v.into_boxed_slice()))
    }

    /// Canonical DNS name order (RFC 4034 §6.1): labels compared right to left as octet
    /// strings, a name sorting before the names below it.
    pub fn canonical_cmp(&self, other: &Name) -> Ordering {
        let mut a = [0u8; MAX_LABELS];
        let mut b = [0u8; MAX_LABELS];
        let na = offsets(&self.0, &mut a);
        let nb = offsets(&other.0, &mut b);
        for k in 1..=na.min(nb) {
            let la = label_at(&self.0, a[na - k]);
            let lb = label_at(&other.0, b[nb - k]);
            match la.cmp(lb) {
                Ordering::Equal => {}
                o => return o,
            }
        }
        na.cmp(&nb)
    }
}

/// Fills `out` with the offset of each label and returns how many there are.
fn offsets(wire: &[u8], out: &mut [u8; MAX_LABELS]) -> usize {
    let mut n = 0;
    let mut i = 0usize;
    while wire[i] != 0 && n < MAX_LABELS {
        out[n] = i as u8;
        n += 1;
        i += 1 + wire[i] as usize;
    }
    n
}

fn label_at(wire: &[u8], off: u8) -> &[u8] {
    let off = off as usize;
    &wire[off + 1..off + 1 + wire[off] as usize]
}

trait LowerLabels {
    fn make_ascii_lowercase_labels(&mut self);
}

impl LowerLabels for Vec<u8> {
    /// Lower-cases the label octets, leaving the length octets alone (a length is never a
    /// letter's code, but be exact).
    fn make_ascii_lowercase_labels(&mut self) {
        let mut i = 0usize;
        while i < self.len() && self[i] != 0 {
            let len = self[i] as usize;
            self[i + 1..i + 1 + len].make_ascii_lowercase();
            i += 1 + len;
        }
    }
}

/// Iterator over a name's labels (see [`Name::labels`]).
pub struct Labels<'a> {
    wire: &'a [u8],
}

impl<'a> Iterator for Labels<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        let len = *self.wire.first()? as usize;
        if len == 0 {
            return None;
        }
        let label = &self.wire[1..1 + len];
        self.wire = &self.wire[1 + len..];
        Some(label)
    }
}

impl PartialOrd for Name {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Name {
    fn cmp(&self, other: &Self) -> Ordering {
        self.canonical_cmp(other)
    }
}

/// Presentation form with a trailing dot: `com.`, `.`; octets other than letters, digits,
/// `-`, `_` and `*` are written `\DDD`.
impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_root() {
            return f.write_str(".");
        }
        for label in self.labels() {
            for &c in label {
                if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'*') {
                    write!(f, "{}", c as char)?;
                } else {
                    write!(f, "\\{c:03}")?;
                }
            }
            f.write_str(".")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Name({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(text: &str) -> Name {
        let mut w = Vec::new();
        for l in text.split('.').filter(|l| !l.is_empty()) {
            w.push(l.len() as u8);
            w.extend_from_slice(l.as_bytes());
        }
        w.push(0);
        Name::from_wire(&w).unwrap().0
    }

    #[test]
    fn canonical_order_is_rfc4034_example() {
        // The example list of RFC 4034 §6.1, in its order.
        let list: [&[&[u8]]; 9] = [
            &[b"example"],
            &[b"a", b"example"],
            &[b"yljkjljk", b"a", b"example"],
            &[b"Z", b"a", b"example"],
            &[b"zABC", b"a", b"EXAMPLE"],
            &[b"z", b"example"],
            &[b"\x01", b"z", b"example"],
            &[b"*", b"z", b"example"],
            &[b"\xc8", b"z", b"example"],
        ];
        let names: Vec<Name> = list
            .iter()
            .map(|labels| {
                let mut w = Vec::new();
                for l in labels.iter() {
                    w.push(l.len() as u8);
                    w.extend_from_slice(l);
                }
                w.push(0);
                Name::from_wire(&w).unwrap().0
            })
            .collect();
        for pair in names.windows(2) {
            assert_eq!(pair[0].canonical_cmp(&pair[1]), Ordering::Less, "{pair:?}");
        }
    }

    #[test]
    fn root_sorts_first_and_prints_as_dot() {
        assert!(Name::root() < n("com"));
        assert_eq!(Name::root().to_string(), ".");
        assert_eq!(n("A.Root-Servers.NET").to_string(), "a.root-servers.net.");
    }

    #[test]
    fn below_and_trim() {
        let a = n("ns1.nic.xyz");
        assert!(a.is_at_or_below(&n("xyz")));
        assert!(a.is_at_or_below(&Name::root()));
        assert!(!a.is_at_or_below(&n("yz")));
        assert_eq!(a.trim_left(2), n("xyz"));
        assert_eq!(a.label_count(), 3);
        assert_eq!(n("xyz").wildcard_of().unwrap().to_string(), "*.xyz.");
    }

    #[test]
    fn malformed_wire_is_refused() {
        assert!(Name::from_wire(&[]).is_none());
        assert!(Name::from_wire(&[3, b'a', b'b']).is_none());
        assert!(Name::from_wire(&[64]).is_none());
        let long: Vec<u8> = std::iter::repeat_n([63u8; 64], 5).flatten().collect();
        assert!(Name::from_wire(&long).is_none());
    }
}
