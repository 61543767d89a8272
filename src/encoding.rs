//! `objectEncoding`: how a fetched value (or a jmesPath result) is decoded
//! into the bytes of its file.
//!
//! - `utf-8` (the default): the bytes as fetched, unchanged.
//! - `base64`: the standard alphabet (`+`, `/`), padding optional; spaces,
//!   tabs and line breaks anywhere are ignored (PEM-style wrapping).
//! - `hex`: two hexadecimal digits (either case) per byte; spaces, tabs and
//!   line breaks are ignored likewise.
//!
//! Names are matched without regard to case. A decoding error gives the
//! byte offset in the value as fetched (whitespace counted), never the byte
//! found there. Decoded bytes, and the whitespace-free copy made on the way,
//! live in [`SecretBytes`], zeroed when dropped.

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use crate::secret::SecretBytes;

/// The `objectEncoding` of an object or a jmesPath entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    /// Bytes as fetched.
    #[default]
    Utf8,
    /// Standard base64, padding optional.
    Base64,
    /// Hexadecimal.
    Hex,
}

/// The names accepted, for messages.
pub const NAMES: &str = "utf-8, base64 or hex";

/// Standard alphabet; `=` padding accepted but not required.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(false),
);

impl Encoding {
    /// Parses an `objectEncoding` value.
    pub fn parse(v: &str) -> Option<Self> {
        match v.to_ascii_lowercase().as_str() {
            "utf-8" | "utf8" => Some(Self::Utf8),
            "base64" => Some(Self::Base64),
            "hex" => Some(Self::Hex),
            _ => None,
        }
    }

    /// The canonical name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Utf8 => "utf-8",
            Self::Base64 => "base64",
            Self::Hex => "hex",
        }
    }

    /// Decodes `value`; the error says what is wrong and where, never what
    /// byte was found.
    pub fn decode(self, value: SecretBytes) -> Result<SecretBytes, String> {
        if self == Self::Utf8 {
            return Ok(value);
        }
        let raw = value.expose();
        // Offsets in `compact` map back to `raw` through `positions`.
        let mut compact = Vec::with_capacity(raw.len());
        let mut positions = Vec::with_capacity(raw.len());
        for (i, b) in raw.iter().enumerate() {
            if !matches!(b, b' ' | b'\t' | b'\r' | b'\n') {
                compact.push(*b);
                positions.push(i);
            }
        }
        let compact = SecretBytes::new(compact);
        let at = |i: usize| positions.get(i).copied().unwrap_or(raw.len());
        match self {
            Self::Utf8 => Ok(value),
            Self::Base64 => {
                let mut out = vec![0u8; base64::decoded_len_estimate(compact.len())];
                match BASE64.decode_slice(compact.expose(), &mut out) {
                    Ok(n) => {
                        out.truncate(n);
                        Ok(SecretBytes::new(out))
                    }
                    Err(e) => {
                        // Zero what was decoded before the error.
                        drop(SecretBytes::new(out));
                        Err(base64_error(e, &at, compact.len()))
                    }
                }
            }
            Self::Hex => {
                let mut out = vec![0u8; compact.len() / 2];
                match hex::decode_to_slice(compact.expose(), &mut out) {
                    Ok(()) => Ok(SecretBytes::new(out)),
                    Err(e) => {
                        drop(SecretBytes::new(out));
                        Err(match e {
                            hex::FromHexError::InvalidHexCharacter { index, .. } => {
                                format!(
                                    "not hex: a non-hexadecimal character at byte {}",
                                    at(index)
                                )
                            }
                            _ => format!(
                                "not hex: an odd number of digits ({}), the last at byte {}",
                                compact.len(),
                                at(compact.len().saturating_sub(1))
                            ),
                        })
                    }
                }
            }
        }
    }
}

fn base64_error(e: base64::DecodeSliceError, at: &dyn Fn(usize) -> usize, len: usize) -> String {
    use base64::DecodeError;
    match e {
        base64::DecodeSliceError::DecodeError(DecodeError::InvalidByte(i, _)) => {
            format!(
                "not base64: a character outside the standard alphabet at byte {}",
                at(i)
            )
        }
        base64::DecodeSliceError::DecodeError(DecodeError::InvalidLastSymbol(i, _)) => {
            format!(
                "not base64: the last character, at byte {}, leaves stray bits",
                at(i)
            )
        }
        base64::DecodeSliceError::DecodeError(DecodeError::InvalidLength(_)) => format!(
            "not base64: its {len} characters (whitespace left out) cannot end a base64 text, at byte {}",
            at(len.saturating_sub(1))
        ),
        base64::DecodeSliceError::DecodeError(DecodeError::InvalidPadding) => {
            "not base64: misplaced padding".to_owned()
        }
        // The buffer is sized by the crate's own estimate.
        base64::DecodeSliceError::OutputSliceTooSmall => "not base64: cannot be decoded".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(e: Encoding, s: &[u8]) -> Result<Vec<u8>, String> {
        e.decode(SecretBytes::new(s.to_vec()))
            .map(|b| b.expose().to_vec())
    }

    #[test]
    fn names() {
        assert_eq!(Encoding::parse("UTF-8"), Some(Encoding::Utf8));
        assert_eq!(Encoding::parse("Base64"), Some(Encoding::Base64));
        assert_eq!(Encoding::parse("hex"), Some(Encoding::Hex));
        assert_eq!(Encoding::parse("base32"), None);
        assert_eq!(Encoding::default().as_str(), "utf-8");
    }

    #[test]
    fn base64_padding_optional_whitespace_ignored() {
        assert_eq!(dec(Encoding::Base64, b"AP8Q").unwrap(), [0, 255, 16]);
        assert_eq!(dec(Encoding::Base64, b"AP8=").unwrap(), [0, 255]);
        assert_eq!(dec(Encoding::Base64, b"AP8").unwrap(), [0, 255]);
        assert_eq!(dec(Encoding::Base64, b" AP\r\n8Q\n").unwrap(), [0, 255, 16]);
        assert_eq!(dec(Encoding::Base64, b"").unwrap(), b"");
    }

    #[test]
    fn base64_errors_give_the_offset_not_the_byte() {
        let e = dec(Encoding::Base64, b"AP\n8_Q").unwrap_err();
        assert!(e.contains("byte 4"), "{e}");
        assert!(!e.contains('_'), "{e}");
        let e = dec(Encoding::Base64, b"AP8Q\nA").unwrap_err();
        assert!(e.contains("byte 5"), "{e}");
        // URL-safe alphabet is not the standard one.
        assert!(dec(Encoding::Base64, b"AP-Q").is_err());
    }

    #[test]
    fn hex_both_cases_errors_give_the_offset() {
        assert_eq!(dec(Encoding::Hex, b"00fFa0\n").unwrap(), [0, 255, 160]);
        let e = dec(Encoding::Hex, b"00 zz").unwrap_err();
        assert!(e.contains("byte 3") && !e.contains('z'), "{e}");
        assert!(dec(Encoding::Hex, b"abc").unwrap_err().contains("odd"));
    }

    #[test]
    fn utf8_is_the_value_unchanged() {
        assert_eq!(dec(Encoding::Utf8, b"\xff x").unwrap(), b"\xff x");
    }
}
