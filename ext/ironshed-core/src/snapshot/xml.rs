//! Reading the XML the thin-provisioning tools print (`thin_delta`, `thin_dump`) as it
//! arrives: the element loop, integer attributes, and the refusal of output cut short. Each
//! parser keeps its own state machine and its own error variant ([`MakeError`]).

use super::{Error, Result};
use crate::IoContext;
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;
use std::io::BufRead;
use std::path::Path;

/// Makes a parser's error: (what was read, byte of the output, what is wrong).
pub(crate) type MakeError = fn(&str, u64, String) -> Error;

/// An element, as [`read_elements`] hands it over.
pub(crate) enum Element<'a, 'b> {
    /// `<name ...>`, or `<name .../>` when the flag is true.
    Open(&'a BytesStart<'b>, bool),
    /// `</name>`.
    Close(&'a str),
}

/// The name of an element.
pub(crate) fn name_of(e: &BytesStart<'_>) -> String {
    let q = e.name();
    let s: &str = q.as_ref();
    s.to_string()
}

/// Reads the XML of `tool`'s output from `r` (named `name` in messages) as it arrives and
/// hands every element to `on` with the byte where it starts. Text between elements and
/// constructs other than declarations and comments are refused. Returns the byte where the
/// output ends.
pub(crate) fn read_elements<R: BufRead>(
    r: R,
    name: &str,
    tool: &str,
    make: MakeError,
    mut on: impl FnMut(Element<'_, '_>, u64) -> Result<()>,
) -> Result<u64> {
    let mut reader = Reader::from_reader(r);
    reader.config_mut().trim_text(true);
    let mut buf = Vec::with_capacity(512);
    loop {
        let pos = reader.buffer_position();
        let ev = reader.read_event_into(&mut buf).map_err(|e| match e {
            quick_xml::Error::Io(io) => Error::Io(IoContext::new(
                Path::new(name),
                format!("read {tool} output"),
                std::io::Error::new(io.kind(), io.to_string()),
            )),
            other => make(
                name,
                reader.error_position(),
                format!("malformed XML: {other}"),
            ),
        })?;
        match ev {
            Event::Eof => break,
            Event::Start(e) => on(Element::Open(&e, false), pos)?,
            Event::Empty(e) => on(Element::Open(&e, true), pos)?,
            Event::End(e) => {
                let q = e.name();
                let n: &str = q.as_ref();
                on(Element::Close(n), pos)?
            }
            Event::Text(t) if !t.as_ref().trim_ascii().is_empty() => {
                return Err(make(name, pos, "unexpected text between elements".into()))
            }
            Event::Decl(_) | Event::Comment(_) | Event::Text(_) => {}
            _ => return Err(make(name, pos, "unexpected XML construct".into())),
        }
        buf.clear();
    }
    Ok(reader.buffer_position())
}

/// The integer attribute `key` of `e` (at byte `pos` of output `name`), if present.
pub(crate) fn attr_u64(
    e: &BytesStart<'_>,
    key: &str,
    pos: u64,
    name: &str,
    make: MakeError,
) -> Result<Option<u64>> {
    for a in e.attributes() {
        let a = a.map_err(|x| make(name, pos, format!("malformed attribute: {x}")))?;
        if a.key.as_ref() == key {
            let v = a.value.trim();
            return v.parse::<u64>().map(Some).map_err(|_| {
                make(
                    name,
                    pos,
                    format!(
                        "<{}> attribute {key}=\"{}\" is not a non-negative integer",
                        name_of(e),
                        a.value
                    ),
                )
            });
        }
    }
    Ok(None)
}

/// The integer attribute `key`, which must be present.
pub(crate) fn need_u64(
    e: &BytesStart<'_>,
    key: &str,
    pos: u64,
    name: &str,
    make: MakeError,
) -> Result<u64> {
    attr_u64(e, key, pos, name, make)?.ok_or_else(|| {
        make(
            name,
            pos,
            format!("<{}> has no {key} attribute", name_of(e)),
        )
    })
}

/// Refuses output that ended before its document did: `started` is false when no
/// `<superblock>` came at all, else `inside` says where it stopped ("inside <diff>"); `None`
/// when the document was complete.
pub(crate) fn unfinished(
    inside: Option<&str>,
    started: bool,
    end: u64,
    name: &str,
    tool: &str,
    make: MakeError,
) -> Result<()> {
    match (inside, started) {
        (None, _) => Ok(()),
        (Some(_), false) => Err(make(
            name,
            end,
            format!("no <superblock>: the output is empty (did {tool} fail?)"),
        )),
        (Some(w), true) => Err(make(
            name,
            end,
            format!("output ends {w} without its closing tags: {tool} stopped early"),
        )),
    }
}
