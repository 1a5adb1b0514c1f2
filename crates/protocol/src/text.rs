//! The contract's text rules: lengths count Unicode scalar values after trimming surrounding
//! whitespace; control characters are refused (message text may hold `\n` and `\t`).
//!
//! Names get more: they may not hold invisible or direction-changing characters, and are unique
//! by [`fold`]: the UTS #39 confusable skeleton of the NFKC, case-folded name, so `pаypal`
//! (Cyrillic `а`), `ALICE` or a full-width `ａｌｉｃｅ` cannot stand beside `paypal` or `alice`,
//! and a composed and a decomposed `é` are one name. The crates are unicode-rs's own:
//! `unicode-normalization` (NFKC) and `unicode-security` (the skeleton, from Unicode's
//! confusables data).

use unicode_normalization::UnicodeNormalization;

/// Why a piece of text was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextError {
    Empty,
    TooLong,
    ControlCharacter,
    /// An invisible or direction-changing character in a name.
    Invisible,
    /// Not ciphertext as encrypted rooms carry it ([`sealed`]).
    NotCiphertext,
}

impl TextError {
    /// A human sentence naming `field`.
    pub fn describe(self, field: &str, max: usize) -> String {
        match self {
            TextError::Empty => format!("{field} must not be empty"),
            TextError::TooLong => format!("{field} must be at most {max} characters"),
            TextError::ControlCharacter => format!("{field} must not contain control characters"),
            TextError::Invisible => {
                format!("{field} must not contain invisible or direction-changing characters")
            }
            TextError::NotCiphertext => format!(
                "{field} must be unpadded base64url of a 12-byte IV, the encrypted text and a 16-byte tag"
            ),
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

/// A short token of text (a `client_id`): 1..=`max` characters, trimmed.
pub fn name(text: &str, max: usize) -> Result<String, TextError> {
    check(text, 1, max, &[])
}

/// A display or owner name: as [`name`], and with no invisible or direction-changing
/// character (see [`INVISIBLE`]).
pub fn display_name(text: &str, max: usize) -> Result<String, TextError> {
    let name = name(text, max)?;
    if name.chars().any(invisible) {
        return Err(TextError::Invisible);
    }
    Ok(name)
}

/// What a name may not hold, because nobody sees it or it reorders what stands beside it: every
/// format character (general category Cf, Unicode 16: the soft hyphen, zero-width spaces and
/// joiners, bidirectional marks, embeddings, overrides and isolates, tags, ...) and the other
/// default-ignorable code points but variation selectors (emoji need those; [`fold`] drops
/// them). An explicit list, so the OpenAPI pattern of names states exactly the same set.
pub const INVISIBLE: &[(char, char)] = &[
    ('\u{00AD}', '\u{00AD}'),
    ('\u{034F}', '\u{034F}'),
    ('\u{0600}', '\u{0605}'),
    ('\u{061C}', '\u{061C}'),
    ('\u{06DD}', '\u{06DD}'),
    ('\u{070F}', '\u{070F}'),
    ('\u{0890}', '\u{0891}'),
    ('\u{08E2}', '\u{08E2}'),
    ('\u{115F}', '\u{1160}'),
    ('\u{17B4}', '\u{17B5}'),
    ('\u{180B}', '\u{180F}'),
    ('\u{200B}', '\u{200F}'),
    ('\u{202A}', '\u{202E}'),
    ('\u{2060}', '\u{206F}'),
    ('\u{3164}', '\u{3164}'),
    ('\u{FEFF}', '\u{FEFF}'),
    ('\u{FFA0}', '\u{FFA0}'),
    ('\u{FFF9}', '\u{FFFB}'),
    ('\u{110BD}', '\u{110BD}'),
    ('\u{110CD}', '\u{110CD}'),
    ('\u{13430}', '\u{1343F}'),
    ('\u{1BCA0}', '\u{1BCA3}'),
    ('\u{1D173}', '\u{1D17A}'),
    ('\u{E0000}', '\u{E0FFF}'),
];

/// Whether `c` is one of [`INVISIBLE`].
pub fn invisible(c: char) -> bool {
    INVISIBLE
        .iter()
        .any(|&(first, last)| (first..=last).contains(&c))
}

/// A room name: 0..=`max` characters; blank means none.
pub fn room_name(text: &str, max: usize) -> Result<Option<String>, TextError> {
    check(text, 0, max, &[]).map(|s| (!s.is_empty()).then_some(s))
}

/// Message text: 1..=`max` characters, trimmed; may hold newlines and tabs.
pub fn message(text: &str, max: usize) -> Result<String, TextError> {
    check(text, 1, max, &['\n', '\t'])
}

/// Whether `text` is only base64url's alphabet (`A-Z`, `a-z`, `0-9`, `-`, `_`), unpadded.
pub fn is_base64url(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Bytes the encryption of a text adds to its UTF-8: a 12-byte IV and a 16-byte tag.
pub const SEAL_OVERHEAD: usize = 28;

/// The most base64url characters of the ciphertext of a text of at most `max_chars`
/// characters: its UTF-8 (at most 4 bytes a character), the IV and the tag, counted as base64
/// counts them (API.md: `ceil((4 * max_chars + 28) / 3) * 4`).
pub fn sealed_max(max_chars: usize) -> usize {
    (4 * max_chars + SEAL_OVERHEAD).div_ceil(3) * 4
}

/// Ciphertext as an encrypted room carries it: unpadded base64url of an IV, at least one
/// encrypted byte and a tag, at most `max` characters. The server cannot read it, so it is
/// checked for shape only and kept byte for byte.
pub fn sealed(text: &str, max: usize) -> Result<&str, TextError> {
    // The shortest: 12 + 1 + 16 bytes, 39 characters.
    let min = ((SEAL_OVERHEAD + 1) * 4).div_ceil(3);
    if text.is_empty() {
        return Err(TextError::Empty);
    }
    if text.len() > max {
        return Err(TextError::TooLong);
    }
    // A length of 4n + 1 characters is no whole number of bytes.
    if !is_base64url(text) || text.len() < min || text.len() % 4 == 1 {
        return Err(TextError::NotCiphertext);
    }
    Ok(text)
}

/// A password: `""` means none; otherwise 1..=`max` characters (counted trimmed), kept verbatim.
pub fn password(text: &str, max: usize) -> Result<Option<String>, TextError> {
    if text.is_empty() {
        return Ok(None);
    }
    check(text, 1, max, &[]).map(|_| Some(text.to_owned()))
}

/// The key under which names are unique: the UTS #39 skeleton of the name case-folded. Case
/// folding is full (`ß` is `ss`, final `ς` is `σ`: upper then lower case), after NFKC, so
/// `Straße`, `STRASSE` and `strasse` are one name, as are `É` composed and decomposed; the
/// skeleton then makes every confusable spelling of it the same key.
pub fn fold(name: &str) -> String {
    let nfkc: String = name.nfkc().collect();
    let folded: String = nfkc.to_uppercase().to_lowercase().nfkc().collect();
    unicode_security::skeleton(&folded).collect()
}

/// One emoji, as Unicode lists them (skin tones, flags and ZWJ sequences included), in its
/// fully qualified spelling, so `"❤"` and `"❤\u{fe0f}"` are the same reaction; `None` for
/// anything else (text, two emoji, an emoji with more after it).
pub fn emoji(text: &str) -> Option<&'static str> {
    emojis::get(text).map(|e| e.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ciphertext_is_unpadded_base64url_within_its_bounds() {
        assert_eq!(sealed_max(2000), 10_704);
        assert_eq!(sealed_max(1), 44);
        let shortest = "A".repeat(39);
        assert_eq!(sealed(&shortest, 100), Ok(shortest.as_str()));
        assert_eq!(sealed("", 100), Err(TextError::Empty));
        assert_eq!(sealed(&"A".repeat(38), 100), Err(TextError::NotCiphertext));
        assert_eq!(
            sealed(&"A".repeat(41), 100),
            Err(TextError::NotCiphertext),
            "4n + 1"
        );
        assert_eq!(sealed(&"A".repeat(101), 100), Err(TextError::TooLong));
        for bad in ["=", "+", "/", " ", ".", "é"] {
            let text = format!("{}{bad}", "A".repeat(40));
            assert_eq!(sealed(&text, 100), Err(TextError::NotCiphertext), "{bad}");
        }
        let every = "abcxyzABCXYZ0189-_".repeat(3);
        assert!(sealed(&every, 100).is_ok());
    }

    #[test]
    fn names_that_look_alike_are_one_name() {
        let same = |a: &str, b: &str| fold(a) == fold(b);
        assert!(same("alice", "ALICE"));
        assert!(same("Straße", "STRASSE"), "full case folding");
        assert!(
            same("\u{c9}mile", "E\u{301}MILE"),
            "composed and decomposed"
        );
        assert!(same("paypal", "p\u{430}yp\u{430}l"), "Cyrillic a");
        assert!(same("alice", "ａｌｉｃｅ"), "full-width");
        assert!(
            same("❤", "❤\u{fe0f}"),
            "a variation selector is no other name"
        );
        assert!(!same("alice", "alicia"));
        assert!(!same("bob", "bab"));
    }

    #[test]
    fn names_hold_nothing_invisible() {
        for hidden in [
            "Ali\u{200b}ce",
            "Ali\u{ad}ce",
            "\u{202e}ecila",
            "al\u{2066}ice\u{2069}",
            "a\u{200d}b",
            "\u{3164}",
            "a\u{e0041}",
        ] {
            assert_eq!(
                display_name(hidden, 32),
                Err(TextError::Invisible),
                "{hidden:?}"
            );
        }
        assert_eq!(
            display_name("❤\u{fe0f} Mia", 32),
            Ok("❤\u{fe0f} Mia".into())
        );
    }

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

    #[test]
    fn an_emoji_is_one_listed_emoji_in_its_qualified_spelling() {
        assert_eq!(emoji("👍"), Some("👍"));
        assert_eq!(emoji("❤"), Some("❤\u{fe0f}"));
        assert_eq!(emoji("❤\u{fe0f}"), Some("❤\u{fe0f}"));
        assert_eq!(emoji("👍🏽"), Some("👍🏽"));
        assert_eq!(emoji("👩\u{200d}💻"), Some("👩\u{200d}💻"));
        assert_eq!(emoji("🇫🇷"), Some("🇫🇷"));
        for not_one in ["", "a", "👍👍", "👍 ", " 👍", "<b>", "\u{200d}", "👍a"] {
            assert_eq!(emoji(not_one), None, "{not_one:?}");
        }
    }
}
