//! The LVM2 text configuration syntax (what `vgcfgbackup` writes, what sits in a PV's metadata
//! area, and what `lvm.conf` uses), parsed into a generic tree of sections and values.
//!
//! The rules follow libdm's own reader:
//! * whitespace separates tokens; `#` starts a comment to the end of the line (outside strings);
//! * `"double"` strings unescape `\"` and `\\` (a backslash before any other character is
//!   kept), `'single'` strings have no escapes;
//! * right after `=`, `[` or `,` a token starting with a digit, `+`, `-` or `.` is a number
//!   (integers follow C `strtoll(…, 0)`: a leading `0` means octal); any other unquoted word in
//!   that position is a bare string; elsewhere a word is a name;
//! * lists hold scalars only, commas between elements are optional where the next element is
//!   not a number;
//! * a repeated key keeps the later value, a repeated section merges into the first;
//! * a `/` inside a name is a path separator (`a/b = 1` is `a { b = 1 }`).
//!
//! Keys keep their file order. Nothing here knows about volume groups: see [`super::model`].

use super::Error;
use std::collections::HashMap;

/// Deepest section nesting accepted (LVM metadata uses 5 levels).
pub const MAX_DEPTH: usize = 64;

/// A value: a scalar or a flat list of scalars.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// An integer (`extent_size = 8192`, `read_ahead = -1`).
    Int(i64),
    /// A number with a decimal point.
    Float(f64),
    /// A quoted string or a bare word in value position.
    Str(String),
    /// `[ ... ]`: scalars only, never nested.
    List(Vec<Value>),
}

impl Value {
    /// The integer, if this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    /// The list elements, if this is a list.
    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }
    /// What kind of value this is, for messages ("an integer", "a list"...).
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number with a decimal point",
            Value::Str(_) => "a string",
            Value::List(_) => "a list",
        }
    }
}

/// An entry of a section: a value or a sub-section.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// `name = value`
    Value(Value),
    /// `name { ... }`
    Section(Section),
}

/// A section: named entries in file order; names are unique (repeats were merged).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Section {
    entries: Vec<(String, Node)>,
    index: HashMap<String, usize>,
}

impl Section {
    /// An empty section.
    pub fn new() -> Self {
        Self::default()
    }
    /// All entries in file order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Node)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    /// True when the section has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    /// The entry named `key`.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.index.get(key).map(|&i| &self.entries[i].1)
    }
    /// The value named `key` (None if absent or a section).
    pub fn value(&self, key: &str) -> Option<&Value> {
        match self.get(key) {
            Some(Node::Value(v)) => Some(v),
            _ => None,
        }
    }
    /// The sub-section named `key` (None if absent or a value).
    pub fn section(&self, key: &str) -> Option<&Section> {
        match self.get(key) {
            Some(Node::Section(s)) => Some(s),
            _ => None,
        }
    }
    /// Sub-sections in file order.
    pub fn sections(&self) -> impl Iterator<Item = (&str, &Section)> {
        self.entries.iter().filter_map(|(k, v)| match v {
            Node::Section(s) => Some((k.as_str(), s)),
            Node::Value(_) => None,
        })
    }
    /// Values in file order.
    pub fn values(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().filter_map(|(k, v)| match v {
            Node::Value(x) => Some((k.as_str(), x)),
            Node::Section(_) => None,
        })
    }

    /// Adds an entry with libdm's rules: a repeated value replaces the earlier one (keeping its
    /// place), a repeated section merges into the earlier one. Mixing a value and a section
    /// under one name is refused (returns the name's existing kind).
    fn insert(&mut self, key: String, node: Node) -> Result<(), &'static str> {
        match self.index.get(&key) {
            None => {
                self.index.insert(key.clone(), self.entries.len());
                self.entries.push((key, node));
                Ok(())
            }
            Some(&i) => match (&mut self.entries[i].1, node) {
                (Node::Value(old), Node::Value(new)) => {
                    *old = new;
                    Ok(())
                }
                (Node::Section(old), Node::Section(new)) => {
                    for (k, v) in new.entries {
                        old.insert(k, v)?;
                    }
                    Ok(())
                }
                (Node::Value(_), Node::Section(_)) => Err("a value"),
                (Node::Section(_), Node::Value(_)) => Err("a section"),
            },
        }
    }
}

/// Parses `text` into its top-level section. `source` names the input in error messages.
pub fn parse(text: &[u8], source: &str) -> Result<Section, Error> {
    let mut p = Parser {
        src: text,
        pos: 0,
        line: 1,
        col: 1,
        source,
    };
    let mut root = Section::new();
    p.items(&mut root, 0, None)?;
    Ok(root)
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    LBrace,
    RBrace,
    LBracket,
    RBracket,
    Comma,
    Eq,
    /// A quoted string (either quote).
    Quoted(String),
    /// An unquoted word lexed in name position.
    Word(String),
    /// An unquoted word lexed in value position (bare string).
    Bare(String),
    /// A number token in value position, not yet converted.
    Number(String),
    Eof,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::LBrace => "'{'".into(),
            Tok::RBrace => "'}'".into(),
            Tok::LBracket => "'['".into(),
            Tok::RBracket => "']'".into(),
            Tok::Comma => "','".into(),
            Tok::Eq => "'='".into(),
            Tok::Quoted(s) => format!("string \"{}\"", shorten(s)),
            Tok::Word(s) | Tok::Bare(s) | Tok::Number(s) => format!("'{}'", shorten(s)),
            Tok::Eof => "end of file".into(),
        }
    }
}

fn shorten(s: &str) -> String {
    if s.chars().count() > 40 {
        let head: String = s.chars().take(40).collect();
        format!("{head}…")
    } else {
        s.to_string()
    }
}

struct Parser<'a> {
    src: &'a [u8],
    pos: usize,
    line: usize,
    col: usize,
    source: &'a str,
}

/// Where a token started, for messages.
#[derive(Clone, Copy)]
struct At {
    line: usize,
    col: usize,
}

impl<'a> Parser<'a> {
    fn err(&self, at: At, msg: impl Into<String>) -> Error {
        Error::Parse {
            source_name: self.source.to_string(),
            line: at.line,
            column: at.col,
            msg: msg.into(),
        }
    }

    fn bump(&mut self) -> Option<u8> {
        let c = *self.src.get(self.pos)?;
        self.pos += 1;
        if c == b'\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    fn peek_byte(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    fn skip_space_and_comments(&mut self) {
        while let Some(c) = self.peek_byte() {
            if c.is_ascii_whitespace() {
                self.bump();
            } else if c == b'#' {
                while let Some(c) = self.peek_byte() {
                    if c == b'\n' {
                        break;
                    }
                    self.bump();
                }
            } else {
                break;
            }
        }
    }

    /// Reads the next token; `values` says whether the previous token was `=`, `[` or `,`.
    fn lex(&mut self, values: bool) -> Result<(Tok, At), Error> {
        self.skip_space_and_comments();
        let at = At {
            line: self.line,
            col: self.col,
        };
        let Some(c) = self.peek_byte() else {
            return Ok((Tok::Eof, at));
        };
        let simple = match c {
            b'{' => Some(Tok::LBrace),
            b'}' => Some(Tok::RBrace),
            b'[' => Some(Tok::LBracket),
            b']' => Some(Tok::RBracket),
            b',' => Some(Tok::Comma),
            b'=' => Some(Tok::Eq),
            _ => None,
        };
        if let Some(t) = simple {
            self.bump();
            return Ok((t, at));
        }
        match c {
            b'"' => {
                self.bump();
                let mut out = Vec::new();
                loop {
                    match self.bump() {
                        None => {
                            return Err(self.err(at, "string not terminated before end of file"))
                        }
                        Some(b'"') => break,
                        Some(b'\\') => match self.bump() {
                            None => {
                                return Err(self.err(at, "string not terminated before end of file"))
                            }
                            Some(e @ (b'"' | b'\\')) => out.push(e),
                            Some(e) => {
                                out.push(b'\\');
                                out.push(e);
                            }
                        },
                        Some(b) => out.push(b),
                    }
                }
                Ok((Tok::Quoted(String::from_utf8_lossy(&out).into_owned()), at))
            }
            b'\'' => {
                self.bump();
                let start = self.pos;
                loop {
                    match self.bump() {
                        None => {
                            return Err(self.err(at, "string not terminated before end of file"))
                        }
                        Some(b'\'') => break,
                        Some(_) => {}
                    }
                }
                let s = String::from_utf8_lossy(&self.src[start..self.pos - 1]).into_owned();
                Ok((Tok::Quoted(s), at))
            }
            b'0'..=b'9' | b'+' | b'-' | b'.' if values => {
                let start = self.pos;
                self.bump();
                let mut dot = c == b'.';
                while let Some(d) = self.peek_byte() {
                    if d.is_ascii_digit() {
                        self.bump();
                    } else if d == b'.' && !dot {
                        dot = true;
                        self.bump();
                    } else {
                        break;
                    }
                }
                if self
                    .peek_byte()
                    .is_some_and(|d| d.is_ascii_alphanumeric() || d == b'_')
                {
                    while self
                        .peek_byte()
                        .is_some_and(|d| d.is_ascii_alphanumeric() || d == b'_')
                    {
                        self.bump();
                    }
                    let s = String::from_utf8_lossy(&self.src[start..self.pos]);
                    return Err(self.err(at, format!("'{}' is not a valid number", shorten(&s))));
                }
                let s = String::from_utf8_lossy(&self.src[start..self.pos]).into_owned();
                Ok((Tok::Number(s), at))
            }
            _ => {
                let start = self.pos;
                while let Some(d) = self.peek_byte() {
                    let stop = d.is_ascii_whitespace()
                        || matches!(
                            d,
                            b'#' | b'=' | b'{' | b'}' | b'[' | b']' | b',' | b'"' | b'\''
                        );
                    if stop {
                        break;
                    }
                    self.bump();
                }
                let s = String::from_utf8_lossy(&self.src[start..self.pos]).into_owned();
                Ok((if values { Tok::Bare(s) } else { Tok::Word(s) }, at))
            }
        }
    }

    /// Parses entries into `into` until `}` (when `open` names the section being read) or EOF.
    fn items(
        &mut self,
        into: &mut Section,
        depth: usize,
        open: Option<(&str, At)>,
    ) -> Result<(), Error> {
        loop {
            let (tok, at) = self.lex(false)?;
            let name = match tok {
                Tok::Eof => {
                    return match open {
                        None => Ok(()),
                        Some((n, o)) => Err(self.err(
                            at,
                            format!(
                                "end of file inside section '{n}' opened at line {}, column {}",
                                o.line, o.col
                            ),
                        )),
                    }
                }
                Tok::RBrace => {
                    return match open {
                        Some(_) => Ok(()),
                        None => Err(self.err(at, "'}' without a matching '{'")),
                    }
                }
                Tok::Word(w) | Tok::Quoted(w) => w,
                other => {
                    return Err(self.err(at, format!("expected a name, found {}", other.describe())))
                }
            };
            if name.is_empty() {
                return Err(self.err(at, "empty name"));
            }
            let (tok, at2) = self.lex(false)?;
            let node = match tok {
                Tok::LBrace => {
                    if depth + 1 > MAX_DEPTH {
                        return Err(self.err(
                            at2,
                            format!("sections nested deeper than {MAX_DEPTH} levels"),
                        ));
                    }
                    let mut sub = Section::new();
                    self.items(&mut sub, depth + 1, Some((&name, at)))?;
                    Node::Section(sub)
                }
                Tok::Eq => Node::Value(self.value(&name)?),
                other => {
                    return Err(self.err(
                        at2,
                        format!(
                            "expected '=' or '{{' after '{}', found {}",
                            shorten(&name),
                            other.describe()
                        ),
                    ))
                }
            };
            self.insert_path(into, &name, node, at)?;
        }
    }

    /// Inserts `node` under `name`, where '/' separates path components.
    fn insert_path(&self, into: &mut Section, name: &str, node: Node, at: At) -> Result<(), Error> {
        let parts: Vec<&str> = name.split('/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(self.err(at, format!("empty component in name '{}'", shorten(name))));
        }
        let mut node = node;
        for p in parts[1..].iter().rev() {
            let mut s = Section::new();
            s.insert((*p).to_string(), node)
                .map_err(|_| self.err(at, "internal error: fresh section"))?;
            node = Node::Section(s);
        }
        into.insert(parts[0].to_string(), node).map_err(|kind| {
            self.err(
                at,
                format!(
                    "'{}' is {kind} already; it cannot also be {}",
                    shorten(name),
                    if kind == "a value" {
                        "a section"
                    } else {
                        "a value"
                    }
                ),
            )
        })
    }

    fn scalar(&self, tok: Tok, at: At, key: &str) -> Result<Value, Error> {
        match tok {
            Tok::Quoted(s) | Tok::Bare(s) => Ok(Value::Str(s)),
            Tok::Number(n) => self.number(&n, at, key),
            other => Err(self.err(
                at,
                format!(
                    "expected a value for '{}', found {}",
                    shorten(key),
                    other.describe()
                ),
            )),
        }
    }

    fn value(&mut self, key: &str) -> Result<Value, Error> {
        let (tok, at) = self.lex(true)?;
        if tok != Tok::LBracket {
            return self.scalar(tok, at, key);
        }
        let mut list = Vec::new();
        let mut after_sep = true;
        loop {
            let (tok, at) = self.lex(after_sep)?;
            match tok {
                Tok::RBracket => return Ok(Value::List(list)),
                Tok::Comma if !after_sep => {
                    after_sep = true;
                    continue;
                }
                Tok::Eof => {
                    return Err(self.err(
                        at,
                        format!("end of file inside the list of '{}'", shorten(key)),
                    ))
                }
                Tok::Quoted(_) | Tok::Bare(_) | Tok::Number(_) => {
                    list.push(self.scalar(tok, at, key)?);
                    after_sep = false;
                }
                other => {
                    return Err(self.err(
                        at,
                        format!(
                            "expected a list element, ',' or ']' in the list of '{}', found {}",
                            shorten(key),
                            other.describe()
                        ),
                    ))
                }
            }
        }
    }

    fn number(&self, text: &str, at: At, key: &str) -> Result<Value, Error> {
        let bad = || {
            self.err(
                at,
                format!(
                    "'{}' is not a valid number (value of '{}')",
                    shorten(text),
                    shorten(key)
                ),
            )
        };
        if text.contains('.') {
            let digits = text.trim_start_matches(['+', '-']).replace('.', "");
            if digits.is_empty() {
                return Err(bad());
            }
            return text.parse::<f64>().map(Value::Float).map_err(|_| bad());
        }
        let (neg, rest) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        if rest.is_empty() {
            return Err(bad());
        }
        let (radix, digits) = if rest.len() > 1 && rest.starts_with('0') {
            (8, &rest[1..])
        } else {
            (10, rest)
        };
        let range = || {
            self.err(
                at,
                format!(
                    "'{}' is out of range (value of '{}')",
                    shorten(text),
                    shorten(key)
                ),
            )
        };
        let mag = u64::from_str_radix(digits, radix).map_err(|e| {
            if *e.kind() == std::num::IntErrorKind::PosOverflow {
                range()
            } else if radix == 8 {
                self.err(
                    at,
                    format!(
                        "'{}' is not a valid number: a leading 0 means octal (value of '{}')",
                        shorten(text),
                        shorten(key)
                    ),
                )
            } else {
                bad()
            }
        })?;
        let v = if neg {
            if mag > i64::MAX as u64 + 1 {
                return Err(range());
            }
            (mag as i128).wrapping_neg() as i64
        } else {
            i64::try_from(mag).map_err(|_| range())?
        };
        Ok(Value::Int(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Section {
        parse(s.as_bytes(), "t").unwrap()
    }
    fn e(s: &str) -> String {
        parse(s.as_bytes(), "t").unwrap_err().to_string()
    }

    #[test]
    fn scalars_of_every_kind() {
        let s = p("a = 1\nb = -1\t# None\nc = 010\nd = \"x\"\ne = 'y\\'\nf = bare_word\ng = 1.5\nh = +7\ni = 0\n");
        assert_eq!(s.value("a"), Some(&Value::Int(1)));
        assert_eq!(s.value("b"), Some(&Value::Int(-1)));
        assert_eq!(s.value("c"), Some(&Value::Int(8)));
        assert_eq!(s.value("d"), Some(&Value::Str("x".into())));
        assert_eq!(s.value("e"), Some(&Value::Str("y\\".into())));
        assert_eq!(s.value("f"), Some(&Value::Str("bare_word".into())));
        assert_eq!(s.value("g"), Some(&Value::Float(1.5)));
        assert_eq!(s.value("h"), Some(&Value::Int(7)));
        assert_eq!(s.value("i"), Some(&Value::Int(0)));
    }

    #[test]
    fn escapes_in_double_quotes() {
        let s = p(r#"description = "vgcfgbackup -f esc_\"q\"_b\\s.vg vga" x = "a\nb""#);
        assert_eq!(
            s.value("description").and_then(Value::as_str),
            Some(r#"vgcfgbackup -f esc_"q"_b\s.vg vga"#)
        );
        assert_eq!(s.value("x").and_then(Value::as_str), Some("a\\nb"));
    }

    #[test]
    fn lists_with_and_without_commas() {
        let s = p("a = [\"READ\", \"WRITE\"]\nb = [\n\"pv0\", 0,\n\"pv1\", 21504\n]\nc = []\nd = [\"x\" \"y\"]\ne = [ bare ]\n");
        assert_eq!(
            s.value("a"),
            Some(&Value::List(vec![
                Value::Str("READ".into()),
                Value::Str("WRITE".into())
            ]))
        );
        assert_eq!(
            s.value("b"),
            Some(&Value::List(vec![
                Value::Str("pv0".into()),
                Value::Int(0),
                Value::Str("pv1".into()),
                Value::Int(21504)
            ]))
        );
        assert_eq!(s.value("c"), Some(&Value::List(vec![])));
        assert_eq!(
            s.value("d").and_then(Value::as_list).map(|l| l.len()),
            Some(2)
        );
        assert_eq!(
            s.value("e"),
            Some(&Value::List(vec![Value::Str("bare".into())]))
        );
    }

    #[test]
    fn sections_nest_merge_and_keep_order() {
        let s = p(
            "vg {\n id = \"x\"\n lvs { a { n = 1 } }\n}\nvg { lvs { b { n = 2 } } seqno = 3 }\n",
        );
        let vg = s.section("vg").unwrap();
        let names: Vec<&str> = vg.entries().map(|(k, _)| k).collect();
        assert_eq!(names, ["id", "lvs", "seqno"]);
        let lvs: Vec<&str> = vg
            .section("lvs")
            .unwrap()
            .sections()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(lvs, ["a", "b"]);
    }

    #[test]
    fn repeated_key_keeps_the_later_value() {
        let s = p("a = 1\nb = 2\na = 3\n");
        assert_eq!(s.value("a"), Some(&Value::Int(3)));
        assert_eq!(s.entries().map(|(k, _)| k).collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn slash_in_a_name_is_a_path() {
        let s = p("activation/reserved_stack = 1\n");
        assert_eq!(
            s.section("activation")
                .and_then(|a| a.value("reserved_stack")),
            Some(&Value::Int(1))
        );
    }

    #[test]
    fn comments_anywhere_outside_strings() {
        let s = p("# head\na = \"x # not a comment\" # comment\nb { # c\n c = 1 # d\n}\n");
        assert_eq!(
            s.value("a").and_then(Value::as_str),
            Some("x # not a comment")
        );
        assert_eq!(
            s.section("b").and_then(|b| b.value("c")),
            Some(&Value::Int(1))
        );
    }

    #[test]
    fn errors_name_line_and_column() {
        assert_eq!(
            e("a = 1\nb = \"x\n"),
            "t: line 2, column 5: string not terminated before end of file"
        );
        assert_eq!(
            e("a {\n b = 1\n"),
            "t: line 3, column 1: end of file inside section 'a' opened at line 1, column 1"
        );
        assert_eq!(
            e("a = 1\n}\n"),
            "t: line 2, column 1: '}' without a matching '{'"
        );
        assert_eq!(
            e("a 1\n"),
            "t: line 1, column 3: expected '=' or '{' after 'a', found '1'"
        );
        assert_eq!(e("a = 09\n"), "t: line 1, column 5: '09' is not a valid number: a leading 0 means octal (value of 'a')");
        assert_eq!(
            e("a = 0x1\n"),
            "t: line 1, column 5: '0x1' is not a valid number"
        );
        assert_eq!(
            e("a = 12abc\n"),
            "t: line 1, column 5: '12abc' is not a valid number"
        );
        assert_eq!(
            e("a = 99999999999999999999\n"),
            "t: line 1, column 5: '99999999999999999999' is out of range (value of 'a')"
        );
        assert_eq!(e("a = [1 2]\n"), "t: line 1, column 8: expected a list element, ',' or ']' in the list of 'a', found '2'");
        assert_eq!(
            e("a = 1\na { }\n"),
            "t: line 2, column 1: 'a' is a value already; it cannot also be a section"
        );
        assert_eq!(
            e("a = -\n"),
            "t: line 1, column 5: '-' is not a valid number (value of 'a')"
        );
        assert_eq!(
            e("a = [\"x\"\n"),
            "t: line 2, column 1: end of file inside the list of 'a'"
        );
        assert_eq!(
            e("a = {\n"),
            "t: line 1, column 5: expected a value for 'a', found '{'"
        );
    }

    #[test]
    fn extreme_integers() {
        let s = p("a = -9223372036854775808\nb = 9223372036854775807\n");
        assert_eq!(s.value("a"), Some(&Value::Int(i64::MIN)));
        assert_eq!(s.value("b"), Some(&Value::Int(i64::MAX)));
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let deep = "a {".repeat(10_000);
        assert!(e(&deep).contains("nested deeper than 64 levels"));
    }
}
