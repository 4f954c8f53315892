//! Lexical pieces of RFC 3261 §25.1 shared by the header parsers. Everything here works on one header
//! value that is already unfolded, so no CR or LF can appear in it.

/// `token` characters (RFC 3261 §25.1). ASCII only: a Unicode letter is not a token character, however
/// alphanumeric it looks.
pub(super) fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

pub(super) fn is_token(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(is_token_char)
}

pub(super) fn is_wsp(b: u8) -> bool {
    matches!(b, b' ' | b'\t')
}

/// What a parameter value may hold when unquoted: `token / host` (RFC 3261 `gen-value`). `host` adds the
/// colons and brackets of IPv6 addresses, which `received` carries without brackets (§18.2.1).
fn is_param_value_char(b: u8) -> bool {
    is_token_char(b) || matches!(b, b':' | b'[' | b']')
}

/// A forward-only reader over one header value. Errors are short descriptions of what was expected; the
/// caller adds which header it was.
pub(super) struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(super) fn new(text: &'a str) -> Self {
        Self { text, pos: 0 }
    }

    pub(super) fn rest(&self) -> &'a str {
        self.text.get(self.pos..).unwrap_or_default()
    }

    pub(super) fn is_at_end(&self) -> bool {
        self.pos >= self.text.len()
    }

    pub(super) fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    pub(super) fn skip_ws(&mut self) {
        while self.peek().is_some_and(is_wsp) {
            self.pos += 1;
        }
    }

    /// Consumes `b` if it is next.
    pub(super) fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Consumes `b` if it is next, ignoring whitespace before it and after it (`SWS b SWS`).
    pub(super) fn eat_separator(&mut self, b: u8) -> bool {
        let start = self.pos;
        self.skip_ws();
        if self.peek() == Some(b) {
            self.pos += 1;
            self.skip_ws();
            true
        } else {
            self.pos = start;
            false
        }
    }

    pub(super) fn expect_separator(
        &mut self,
        b: u8,
        problem: &'static str,
    ) -> Result<(), &'static str> {
        if self.eat_separator(b) {
            Ok(())
        } else {
            Err(problem)
        }
    }

    /// The longest run of bytes satisfying `pred`, possibly empty. Every `pred` here either accepts all
    /// non-ASCII bytes or none, so the run ends on a character boundary.
    pub(super) fn take_while(&mut self, pred: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(&pred) {
            self.pos += 1;
        }
        self.text.get(start..self.pos).unwrap_or_default()
    }

    pub(super) fn token(&mut self, problem: &'static str) -> Result<&'a str, &'static str> {
        let token = self.take_while(is_token_char);
        if token.is_empty() {
            Err(problem)
        } else {
            Ok(token)
        }
    }

    /// A `quoted-string`, returned with its quotes and escapes as written.
    pub(super) fn quoted_string(&mut self) -> Result<&'a str, &'static str> {
        let start = self.pos;
        let bytes = self.text.as_bytes();
        if bytes.get(self.pos) != Some(&b'"') {
            return Err("expected a quoted string");
        }
        let mut at = self.pos + 1;
        loop {
            match bytes.get(at) {
                None => return Err("unterminated quoted string"),
                Some(b'"') => break,
                // `quoted-pair` escapes any character but CR and LF, and those cannot occur here.
                Some(b'\\') => {
                    if at + 1 >= bytes.len() {
                        return Err("unterminated quoted string");
                    }
                    at += 2;
                }
                Some(_) => at += 1,
            }
        }
        // A backslash may precede a multi-byte character; stepping over its first byte lands inside it,
        // but only ever on a continuation byte, never on `"` or `\`, so the closing quote is still found
        // at a character boundary.
        self.pos = at + 1;
        self.text
            .get(start..self.pos)
            .ok_or("invalid quoted string")
    }

    /// `*(SEMI generic-param)`. Stops before anything that does not start with `;`.
    pub(super) fn params(&mut self) -> Result<Vec<(&'a str, Option<&'a str>)>, &'static str> {
        let mut params = Vec::new();
        while self.eat_separator(b';') {
            let name = self.token("expected a parameter name")?;
            let value = if self.eat_separator(b'=') {
                Some(self.param_value()?)
            } else {
                None
            };
            params.push((name, value));
        }
        Ok(params)
    }

    fn param_value(&mut self) -> Result<&'a str, &'static str> {
        if self.peek() == Some(b'"') {
            self.quoted_string()
        } else {
            let value = self.take_while(is_param_value_char);
            if value.is_empty() {
                Err("expected a parameter value")
            } else {
                Ok(value)
            }
        }
    }

    /// Succeeds only if nothing but whitespace is left.
    pub(super) fn end(&mut self, problem: &'static str) -> Result<(), &'static str> {
        self.skip_ws();
        if self.is_at_end() {
            Ok(())
        } else {
            Err(problem)
        }
    }
}

/// Whether `value` is a valid unquoted or quoted parameter value.
pub(super) fn is_param_value(value: &str) -> bool {
    if value.starts_with('"') {
        let mut cursor = Cursor::new(value);
        cursor.quoted_string().is_ok() && cursor.is_at_end()
    } else {
        !value.is_empty() && value.bytes().all(is_param_value_char)
    }
}

/// Splits a list header's value at the commas that separate its elements: not those inside a quoted
/// string or inside `<...>`, where a URI may contain commas. An empty value is an empty list; an empty
/// element (`a,,b`) is an error, as SIP's list syntax has none of HTTP's `#rule` leniency.
pub(super) fn split_list(value: &str) -> Result<Vec<&str>, &'static str> {
    let mut elements = Vec::new();
    if value.trim_matches([' ', '\t']).is_empty() {
        return Ok(elements);
    }
    let bytes = value.as_bytes();
    let mut start = 0;
    let mut at = 0;
    let mut in_angle = false;
    while let Some(&b) = bytes.get(at) {
        match b {
            b'"' if !in_angle => {
                let mut cursor = Cursor {
                    text: value,
                    pos: at,
                };
                cursor.quoted_string()?;
                at = cursor.pos;
                continue;
            }
            b'<' => in_angle = true,
            b'>' => in_angle = false,
            b',' if !in_angle => {
                elements.push(value.get(start..at).unwrap_or_default());
                start = at + 1;
            }
            _ => {}
        }
        at += 1;
    }
    if in_angle {
        return Err("unterminated <...>");
    }
    elements.push(value.get(start..).unwrap_or_default());
    let elements: Vec<&str> = elements
        .into_iter()
        .map(|element| element.trim_matches([' ', '\t']))
        .collect();
    if elements.iter().any(|element| element.is_empty()) {
        return Err("empty list element");
    }
    Ok(elements)
}

/// The text of a quoted string without its quotes and escapes. Text that is not quoted is returned as is.
pub(super) fn unquote(raw: &str) -> String {
    let Some(inner) = raw
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
    else {
        return raw.to_owned();
    };
    let mut text = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(escaped) = chars.next() {
                text.push(escaped);
            }
        } else {
            text.push(c);
        }
    }
    text
}

/// `text` as a quoted string. CR and LF cannot be escaped in SIP, so they become spaces: whatever the
/// text, the result stays on one header line.
pub(super) fn quote(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                quoted.push('\\');
                quoted.push(c);
            }
            '\r' | '\n' | '\0' => quoted.push(' '),
            _ => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// `text` with CR, LF and NUL replaced by spaces, for free text written into a start line or header.
pub(super) fn one_line(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains(['\r', '\n', '\0']) {
        std::borrow::Cow::Owned(text.replace(['\r', '\n', '\0'], " "))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// `1*DIGIT` as a `u32`; more digits than fit is an error, not a wrap-around.
pub(super) fn parse_u32(digits: &str) -> Option<u32> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}
