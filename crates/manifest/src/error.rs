//! What is wrong with a declarative input, and where: the file, the
//! function and the path of the field.
//!
//! Validators of one value return a [`FieldError`] without a field (they do
//! not know where the value stands); each caller that does puts it in place
//! with [`FieldError::at`], so the path grows outwards: `"tier[1]"`, then
//! `"placement.tier[1]"`. A manifest or node config adds the file and the
//! function, as an [`Error`].

use std::fmt;
use std::path::PathBuf;
use weft_codes::Code;

/// A value that does not validate, and the path of its field below the
/// table being checked (`timeout`, `placement.tier[1]`, `cron[0].schedule`;
/// empty while not yet known).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    field: String,
    message: String,
    code: Code,
}

impl FieldError {
    /// What is wrong, not yet placed at a field; its code is
    /// [`Code::InvalidSpec`] unless [`FieldError::with_code`] says otherwise.
    pub fn new(message: impl Into<String>) -> FieldError {
        FieldError {
            field: String::new(),
            message: message.into(),
            code: Code::InvalidSpec,
        }
    }

    /// The same error under another code (`invalid_trigger` for a cron
    /// schedule or an MQTT filter, `invalid_name` for a name).
    #[must_use]
    pub fn with_code(mut self, code: Code) -> FieldError {
        self.code = code;
        self
    }

    /// The error's code.
    pub fn code(&self) -> Code {
        self.code
    }

    /// The error at `field` (a key, or `key[i]`): the path so far goes below
    /// it.
    #[must_use]
    pub fn at(mut self, field: impl fmt::Display) -> FieldError {
        let field = field.to_string();
        self.field = if self.field.is_empty() {
            field
        } else if self.field.starts_with('[') {
            format!("{field}{}", self.field)
        } else {
            format!("{field}.{}", self.field)
        };
        self
    }

    /// The path of the field; empty if not placed.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// What is wrong, without the field.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// `field: message`, or the message alone when the field is not known.
impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

impl std::error::Error for FieldError {}

/// `Err` of a field's validation: `bad("timeout", "…")`.
pub(crate) fn bad<T>(field: &str, message: impl Into<String>) -> Result<T, FieldError> {
    Err(FieldError::new(message).at(field))
}

/// A manifest (`weft.toml`) or node config that cannot be used: the file,
/// the line when the text does not parse, the function and the field path
/// when a value is wrong.
///
/// Shown as `weft.toml:4: functions.hello.timeout: 2h is not between …`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// The file.
    pub file: PathBuf,
    /// The line (1-based), when the text itself is at fault.
    pub line: Option<usize>,
    /// The function (`[functions.NAME]`), for a manifest.
    pub function: Option<String>,
    /// The path of the field below the function (or below the file's top
    /// level when there is no function).
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl Error {
    pub(crate) fn file(file: &std::path::Path, message: impl Into<String>) -> Error {
        Error {
            file: file.to_path_buf(),
            line: None,
            function: None,
            field: None,
            message: message.into(),
        }
    }

    pub(crate) fn field(file: &std::path::Path, function: Option<&str>, e: FieldError) -> Error {
        Error {
            file: file.to_path_buf(),
            line: None,
            function: function.map(str::to_string),
            field: Some(e.field).filter(|f| !f.is_empty()),
            message: e.message,
        }
    }

    /// The full path of the field: `functions.NAME.FIELD`, or `FIELD`.
    pub fn path(&self) -> Option<String> {
        match (&self.function, &self.field) {
            (Some(f), Some(field)) => Some(format!("functions.{f}.{field}")),
            (Some(f), None) => Some(format!("functions.{f}")),
            (None, Some(field)) => Some(field.clone()),
            (None, None) => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        match self.path() {
            Some(p) => write!(f, ": {p}: {}", self.message),
            None => write!(f, ": {}", self.message),
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_grow_outwards() {
        let e = FieldError::new("`x` is not a tier").at("[1]").at("tier");
        assert_eq!(e.field(), "tier[1]");
        let e = e.at("placement");
        assert_eq!(e.to_string(), "placement.tier[1]: `x` is not a tier");
        let e = Error::field("weft.toml".as_ref(), Some("detect"), e);
        assert_eq!(
            e.to_string(),
            "weft.toml: functions.detect.placement.tier[1]: `x` is not a tier"
        );
    }
}
