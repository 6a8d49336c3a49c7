//! Form bodies as Twilio's REST API takes them (PascalCase names, `true`/`false`, repeated
//! keys for lists) and URL path segments.

use super::{RestError, API_VERSION};
use crate::vocabulary::HttpMethod;

/// Form fields being written.
pub(super) struct FormWriter(pub(super) Vec<(String, String)>);

/// Form fields being read.
pub(super) struct FormReader<'a>(pub(super) &'a [(String, String)]);

// === paths ===

pub(super) fn segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

pub(super) fn account_path(account_sid: &str) -> String {
    format!("/{API_VERSION}/Accounts/{}", segment(account_sid))
}

// === impl FormWriter ===

impl FormWriter {
    pub(super) fn put(&mut self, name: &str, value: &str) {
        self.0.push((name.to_owned(), value.to_owned()));
    }

    pub(super) fn opt(&mut self, name: &str, value: Option<&str>) {
        if let Some(value) = value {
            self.put(name, value);
        }
    }

    pub(super) fn num(&mut self, name: &str, value: Option<u32>) {
        if let Some(value) = value {
            self.put(name, &value.to_string());
        }
    }

    pub(super) fn bool(&mut self, name: &str, value: Option<bool>) {
        self.opt(name, value.map(|on| if on { "true" } else { "false" }));
    }

    pub(super) fn method(&mut self, name: &str, value: Option<HttpMethod>) {
        self.opt(name, value.map(HttpMethod::as_str));
    }

    pub(super) fn repeated<T>(&mut self, name: &str, values: &[T], as_str: impl Fn(&T) -> &str) {
        for value in values {
            self.put(name, as_str(value));
        }
    }
}

// === impl FormReader ===

impl FormReader<'_> {
    pub(super) fn string(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    }

    pub(super) fn required(&self, name: &'static str) -> Result<String, RestError> {
        self.string(name).ok_or(RestError::MissingField(name))
    }

    pub(super) fn num(&self, name: &'static str) -> Result<Option<u32>, RestError> {
        self.string(name)
            .map(|value| value.parse().map_err(|_| RestError::InvalidField(name)))
            .transpose()
    }

    pub(super) fn bool(&self, name: &'static str) -> Result<Option<bool>, RestError> {
        match self.string(name).as_deref() {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(_) => Err(RestError::InvalidField(name)),
        }
    }

    pub(super) fn method(&self, name: &'static str) -> Result<Option<HttpMethod>, RestError> {
        match self.string(name).as_deref() {
            None => Ok(None),
            Some("GET") => Ok(Some(HttpMethod::Get)),
            Some("POST") => Ok(Some(HttpMethod::Post)),
            Some(_) => Err(RestError::InvalidField(name)),
        }
    }

    pub(super) fn repeated<T: for<'s> From<&'s str>>(&self, name: &str) -> Vec<T> {
        self.0
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| T::from(value.as_str()))
            .collect()
    }
}
