//! Writing elements exactly as Python's ElementTree does (which is what twilio-python uses):
//! attributes sorted by name, text only when non-empty, `" />"` for empty elements, and its
//! escaping. Refuses characters XML 1.0 cannot carry.

use std::borrow::Cow;

use super::TwimlError;

/// An element ready to write; attributes are sorted when written.
pub(super) struct Element<'a> {
    name: &'static str,
    attrs: Vec<(&'static str, Cow<'a, str>)>,
    text: &'a str,
    children: Vec<Element<'a>>,
}

// === impl Element ===

impl<'a> Element<'a> {
    pub(super) fn new(name: &'static str) -> Self {
        Self {
            name,
            attrs: Vec::new(),
            text: "",
            children: Vec::new(),
        }
    }

    pub(super) fn attr(mut self, name: &'static str, value: Option<&'a str>) -> Self {
        if let Some(value) = value {
            self.attrs.push((name, Cow::Borrowed(value)));
        }
        self
    }

    pub(super) fn attr_owned(mut self, name: &'static str, value: Option<String>) -> Self {
        if let Some(value) = value {
            self.attrs.push((name, Cow::Owned(value)));
        }
        self
    }

    pub(super) fn attr_bool(self, name: &'static str, value: Option<bool>) -> Self {
        self.attr(name, value.map(|on| if on { "true" } else { "false" }))
    }

    pub(super) fn attr_num(self, name: &'static str, value: Option<u32>) -> Self {
        self.attr_owned(name, value.map(|n| n.to_string()))
    }

    pub(super) fn text(mut self, text: &'a str) -> Self {
        self.text = text;
        self
    }

    pub(super) fn child(mut self, child: Element<'a>) -> Self {
        self.children.push(child);
        self
    }

    /// Writes like ElementTree: sorted attributes, text only if non-empty, `" />"` if empty.
    pub(super) fn write(&self, out: &mut String) -> Result<(), TwimlError> {
        let mut attrs: Vec<&(&'static str, Cow<'a, str>)> = self.attrs.iter().collect();
        attrs.sort_by_key(|(name, _)| *name);
        out.push('<');
        out.push_str(self.name);
        for (name, value) in attrs {
            check_chars(value, self.name, name)?;
            out.push(' ');
            out.push_str(name);
            out.push_str("=\"");
            escape_attr(out, value);
            out.push('"');
        }
        if self.text.is_empty() && self.children.is_empty() {
            out.push_str(" />");
            return Ok(());
        }
        out.push('>');
        check_chars(self.text, self.name, "text")?;
        escape_text(out, self.text);
        for child in &self.children {
            child.write(out)?;
        }
        out.push_str("</");
        out.push_str(self.name);
        out.push('>');
        Ok(())
    }
}

pub(super) fn space_separated<T>(items: &[T], as_str: impl Fn(&T) -> &str) -> Option<String> {
    if items.is_empty() {
        return None;
    }
    let words: Vec<&str> = items.iter().map(as_str).collect();
    Some(words.join(" "))
}

/// XML 1.0 `Char`: tab, LF, CR, and everything from U+0020 except U+FFFE and U+FFFF
/// (a Rust `str` holds no surrogates).
fn check_chars(s: &str, element: &'static str, field: &'static str) -> Result<(), TwimlError> {
    let invalid = |c: char| {
        (c < ' ' && !matches!(c, '\t' | '\n' | '\r')) || matches!(c, '\u{FFFE}' | '\u{FFFF}')
    };
    if s.chars().any(invalid) {
        return Err(TwimlError::InvalidCharacter { element, field });
    }
    Ok(())
}

fn escape_text(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            _ => out.push(c),
        }
    }
}

fn escape_attr(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\r' => out.push_str("&#13;"),
            '\n' => out.push_str("&#10;"),
            '\t' => out.push_str("&#09;"),
            _ => out.push(c),
        }
    }
}
