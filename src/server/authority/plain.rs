//! A header block with every Huffman-coded string written out plainly
//! (RFC 7541 §5.2, H bit clear), every other byte as it was.
//!
//! Why: [`loona_hpack`] builds its Huffman code table anew for each
//! Huffman-coded string it meets, which cost about 30 µs per string and a
//! sixth of a warm Mount's instructions. Here one decoder per thread is
//! built once and reused; the block handed on holds only plain strings, which
//! the HPACK decoder copies without that cost. Its table, and so the meaning
//! of every index, is unchanged: Huffman coding is only how a string travels.
//!
//! Bounds: a string decodes to at most 8/5 of its coded length (the
//! shortest code is 5 bits), so the result is at most that of the block.

use std::cell::RefCell;

use loona_hpack::decoder::{DecoderError, IntegerDecodingError, StringDecodingError};
use loona_hpack::encoder::encode_integer_into;
use loona_hpack::huffman::HuffmanDecoder;

thread_local! {
    static HUFFMAN: RefCell<HuffmanDecoder> = RefCell::new(HuffmanDecoder::new());
}

/// Continuation bytes accepted in one integer: values up to 2^28 - 1, far
/// past any length a bounded block can hold.
const MAX_INTEGER_BYTES: usize = 4;

/// `block` with its Huffman-coded strings decoded, appended to `out`.
pub fn plain(block: &[u8], out: &mut Vec<u8>) -> Result<(), DecoderError> {
    let mut at = 0;
    while let Some(&first) = block.get(at) {
        let (prefix, strings) = match first {
            // Indexed field.
            b if b & 0x80 != 0 => (7, 0),
            // Literal with incremental indexing.
            b if b & 0xC0 == 0x40 => (6, 1),
            // Dynamic table size update.
            b if b & 0xE0 == 0x20 => (5, 0),
            // Literal without indexing, or never indexed.
            _ => (4, 1),
        };
        let (index, len) = integer(&block[at..], prefix)?;
        out.extend_from_slice(&block[at..at + len]);
        at += len;
        // A literal names its field by index, or by a string when 0.
        let strings = strings + usize::from(strings == 1 && index == 0);
        for _ in 0..strings {
            at += string(&block[at..], out)?;
        }
    }
    Ok(())
}

/// One string at the start of `buf`, written plainly to `out`; the bytes it
/// took in `buf`.
fn string(buf: &[u8], out: &mut Vec<u8>) -> Result<usize, DecoderError> {
    let short = || DecoderError::StringDecodingError(StringDecodingError::NotEnoughOctets);
    let huffman = buf.first().ok_or_else(short)? & 0x80 != 0;
    let (len, head) = integer(buf, 7)?;
    let body = buf.get(head..head.saturating_add(len)).ok_or_else(short)?;
    if huffman {
        let decoded = HUFFMAN
            .with(|decoder| decoder.borrow_mut().decode(body))
            .map_err(|e| {
                DecoderError::StringDecodingError(StringDecodingError::HuffmanDecoderError(e))
            })?;
        // Writing to a Vec cannot fail.
        let _ = encode_integer_into(decoded.len(), 7, 0, out);
        out.extend_from_slice(&decoded);
    } else {
        out.extend_from_slice(&buf[..head + len]);
    }
    Ok(head + len)
}

/// An integer with a `prefix`-bit prefix at the start of `buf` (RFC 7541
/// §5.1): its value and the bytes it took.
fn integer(buf: &[u8], prefix: u8) -> Result<(usize, usize), DecoderError> {
    let error = |e| DecoderError::IntegerDecodingError(e);
    let mask = (1usize << prefix) - 1;
    let first = usize::from(
        *buf.first()
            .ok_or(error(IntegerDecodingError::NotEnoughOctets))?,
    );
    let mut value = first & mask;
    if value < mask {
        return Ok((value, 1));
    }
    for (i, &byte) in buf[1..].iter().enumerate() {
        if i == MAX_INTEGER_BYTES {
            return Err(error(IntegerDecodingError::TooManyOctets));
        }
        value += usize::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((value, i + 2));
        }
    }
    Err(error(IntegerDecodingError::NotEnoughOctets))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `block` directly and through [`plain`]: the same fields.
    fn same_fields(block: &[u8]) {
        let direct = loona_hpack::Decoder::new()
            .decode(block)
            .expect("valid block");
        let mut plain_block = Vec::new();
        plain(block, &mut plain_block).expect("valid block");
        let through = loona_hpack::Decoder::new()
            .decode(&plain_block)
            .expect("still valid");
        assert_eq!(direct, through);
    }

    #[test]
    fn huffman_strings_come_out_plain_and_mean_the_same() {
        // RFC 7541 C.4.1 to C.4.3: requests with Huffman coding, one
        // decoder across the three so their table references hold.
        let blocks: [&[u8]; 3] = [
            &[
                0x82, 0x86, 0x84, 0x41, 0x8c, 0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab,
                0x90, 0xf4, 0xff,
            ],
            &[
                0x82, 0x86, 0x84, 0xbe, 0x58, 0x86, 0xa8, 0xeb, 0x10, 0x64, 0x9c, 0xbf,
            ],
            &[
                0x82, 0x87, 0x85, 0xbf, 0x40, 0x88, 0x25, 0xa8, 0x49, 0xe9, 0x5b, 0xa9, 0x7d, 0x7f,
                0x89, 0x25, 0xa8, 0x49, 0xe9, 0x5b, 0xb8, 0xe8, 0xb4, 0xbf,
            ],
        ];
        let mut direct = loona_hpack::Decoder::new();
        let mut through = loona_hpack::Decoder::new();
        for block in blocks {
            same_fields(&block[..3]);
            let mut plain_block = Vec::new();
            plain(block, &mut plain_block).unwrap();
            assert!(plain_block.len() >= block.len());
            assert_eq!(
                direct.decode(block).unwrap(),
                through.decode(&plain_block).unwrap()
            );
        }
        let mut plain_block = Vec::new();
        plain(blocks[0], &mut plain_block).unwrap();
        assert!(plain_block.windows(15).any(|w| w == b"www.example.com"));
    }

    #[test]
    fn plain_strings_and_long_integers_pass_unchanged() {
        // RFC 7541 C.3.1 (no Huffman), and a table size update of 4096
        // (a multi-byte integer) before an indexed field.
        let blocks: [&[u8]; 2] = [
            &[
                0x82, 0x86, 0x84, 0x41, 0x0f, b'w', b'w', b'w', b'.', b'e', b'x', b'a', b'm', b'p',
                b'l', b'e', b'.', b'c', b'o', b'm',
            ],
            &[0x3f, 0xe1, 0x1f, 0x82],
        ];
        for block in blocks {
            let mut out = Vec::new();
            plain(block, &mut out).unwrap();
            assert_eq!(out, block);
        }
    }

    #[test]
    fn truncated_or_endless_input_is_an_error() {
        for block in [
            &[0x41, 0x8c, 0xf1][..],
            &[0x41][..],
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01][..],
            &[0x00, 0x85][..],
            // A Huffman string holding EOS padding that is too long.
            &[0x00, 0x81, b'a', 0x81, 0xff, 0xff][..],
        ] {
            let mut out = Vec::new();
            assert!(plain(block, &mut out).is_err(), "{block:?}");
        }
    }
}
