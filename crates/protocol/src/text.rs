//! The contract's text rules: lengths count Unicode scalar values after trimming surrounding
//! whitespace; control characters are refused (message text may hold `\n` and `\t`).

/// Why a piece of text was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextError {
    Empty,
    TooLong,
    ControlCharacter,
}

impl TextError {
    /// A human sentence naming `field`.
    pub fn describe(self, field: &str, max: usize) -> String {
        match self {
            TextError::Empty => format!("{field} must not be empty"),
            TextError::TooLong => format!("{field} must be at most {max} characters"),
            TextError::ControlCharacter => format!("{field} must not contain control characters"),
        }
    }
}

fn check(text: &str, min: usize, max: usize, allow: &[char]) -> Result<String, TextError> {
    let trimmed = text.trim();
    if trimmed
        .chars()
        .any(|c| c.is_control() && !allow.contains(&c))
    {
        return Err(TextError::ControlCharacter);
    }
    let len = trimmed.chars().count();
    if len < min {
        return Err(TextError::Empty);
    }
    if len > max {
        return Err(TextError::TooLong);
    }
    Ok(trimmed.to_owned())
}

/// A display or owner name: 1..=`max` characters, trimmed.
pub fn name(text: &str, max: usize) -> Result<String, TextError> {
    check(text, 1, max, &[])
}

/// A room name: 0..=`max` characters; blank means none.
pub fn room_name(text: &str, max: usize) -> Result<Option<String>, TextError> {
    check(text, 0, max, &[]).map(|s| (!s.is_empty()).then_some(s))
}

/// Message text: 1..=`max` characters, trimmed; may hold newlines and tabs.
pub fn message(text: &str, max: usize) -> Result<String, TextError> {
    check(text, 1, max, &['\n', '\t'])
}

/// A password: `""` means none; otherwise 1..=`max` characters (counted trimmed), kept verbatim.
pub fn password(text: &str, max: usize) -> Result<Option<String>, TextError> {
    if text.is_empty() {
        return Ok(None);
    }
    check(text, 1, max, &[]).map(|_| Some(text.to_owned()))
}

/// The key under which names are unique: case-insensitive.
pub fn fold(name: &str) -> String {
    name.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded_in_scalar_values() {
        assert_eq!(name("  bob ", 32), Ok("bob".into()));
        assert_eq!(name("   ", 32), Err(TextError::Empty));
        assert_eq!(name(&"é".repeat(32), 32), Ok("é".repeat(32)));
        assert_eq!(name(&"é".repeat(33), 32), Err(TextError::TooLong));
        assert_eq!(name("a\u{7}b", 32), Err(TextError::ControlCharacter));
        assert_eq!(name("a\nb", 32), Err(TextError::ControlCharacter));
        assert_eq!(fold("BoB"), fold("bob"));
    }

    #[test]
    fn message_text_allows_newlines_and_tabs_only() {
        assert_eq!(message(" hi\n\tthere ", 2000), Ok("hi\n\tthere".into()));
        assert_eq!(message("\n", 2000), Err(TextError::Empty));
        assert_eq!(message("a\u{0}", 2000), Err(TextError::ControlCharacter));
        assert_eq!(message(&"x".repeat(2000), 2000).map(|s| s.len()), Ok(2000));
        assert_eq!(message(&"x".repeat(2001), 2000), Err(TextError::TooLong));
        assert_eq!(
            message(&"😀".repeat(2000), 2000).map(|s| s.chars().count()),
            Ok(2000)
        );
    }

    #[test]
    fn room_names_and_passwords() {
        assert_eq!(room_name("", 80), Ok(None));
        assert_eq!(room_name(" Standup ", 80), Ok(Some("Standup".into())));
        assert_eq!(room_name(&"x".repeat(81), 80), Err(TextError::TooLong));
        assert_eq!(password("", 128), Ok(None));
        assert_eq!(password(" s3cret ", 128), Ok(Some(" s3cret ".into())));
        assert_eq!(password("   ", 128), Err(TextError::Empty));
        assert_eq!(password(&"p".repeat(129), 128), Err(TextError::TooLong));
        assert_eq!(
            TextError::TooLong.describe("display_name", 32),
            "display_name must be at most 32 characters"
        );
    }
}
