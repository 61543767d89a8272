//! The gRPC codec of the provider API: prost's, with a bound on how many
//! top-level fields a message may carry, checked on the wire before it is
//! decoded.
//!
//! Decoding amplifies repeated fields: an empty `ObjectVersion` entry of
//! `MountRequest.current_object_version` is two bytes on the wire and a
//! 48-byte slot once decoded, so a 4 MiB request would become about 100 MiB.
//! A request is therefore scanned first (a loop over its top-level field
//! keys and lengths; nothing is allocated) and refused with
//! `INVALID_ARGUMENT` when it holds more top-level fields than
//! [`MAX_CURRENT_VERSIONS`] entries plus 16 for its strings (a field may be
//! repeated on the wire). Strings decode to at most their own size, which
//! [`super::MAX_REQUEST_BYTES`] bounds.

use std::marker::PhantomData;

use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::{ProstDecoder, ProstEncoder};

use crate::proto::{MountRequest, MountResponse, VersionRequest, VersionResponse};

/// Most `current_object_version` entries in a Mount request. A driver
/// sends one per file it mounted, and a mount has at most
/// [`crate::spc::objects::MAX_FILES`] files; four times that leaves room
/// for files of earlier classes a driver may still list.
pub const MAX_CURRENT_VERSIONS: usize = 4 * crate::spc::objects::MAX_FILES;

/// Most top-level fields a message of this type may carry on the wire.
pub trait WireBound {
    /// The bound.
    const MAX_FIELDS: usize;
    /// What the fields are, for the error.
    const WHAT: &'static str;
}

impl WireBound for MountRequest {
    // Four strings (each may be repeated on the wire; the last wins), the
    // versions.
    const MAX_FIELDS: usize = MAX_CURRENT_VERSIONS + 16;
    const WHAT: &'static str = "fields (current_object_version entries and the four strings)";
}

impl WireBound for VersionRequest {
    const MAX_FIELDS: usize = 16;
    const WHAT: &'static str = "fields in a Version request";
}

// Answers come from this provider, so these bounds only keep a client of
// ours (the `mount` tool, the probes) from decoding without limit.
impl WireBound for MountResponse {
    const MAX_FIELDS: usize = 4 * MAX_CURRENT_VERSIONS;
    const WHAT: &'static str = "entries in a Mount response";
}

impl WireBound for VersionResponse {
    const MAX_FIELDS: usize = 16;
    const WHAT: &'static str = "fields in a Version response";
}

/// prost's codec with [`WireBound`] checked before decoding.
#[derive(Debug, Clone)]
pub struct BoundedCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for BoundedCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for BoundedCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + WireBound + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = BoundedDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        BoundedDecoder(ProstDecoder::new(BufferSettings::default()))
    }
}

/// The decoder of [`BoundedCodec`].
#[derive(Debug)]
pub struct BoundedDecoder<U>(ProstDecoder<U>);

impl<U: prost::Message + Default + WireBound> Decoder for BoundedDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        use prost::bytes::Buf;
        // tonic hands over the whole message in one contiguous buffer.
        if buf.chunk().len() == buf.remaining()
            && top_level_fields(buf.chunk(), U::MAX_FIELDS) > U::MAX_FIELDS
        {
            return Err(Status::invalid_argument(format!(
                "more than {} {}",
                U::MAX_FIELDS,
                U::WHAT
            )));
        }
        self.0.decode(buf)
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}

/// Counts the top-level fields of a protobuf message, stopping past
/// `stop_after`. Malformed input ends the count; prost then reports it.
fn top_level_fields(mut wire: &[u8], stop_after: usize) -> usize {
    let mut count = 0;
    while !wire.is_empty() && count <= stop_after {
        let Some(key) = varint(&mut wire) else {
            break;
        };
        let skip = match key & 7 {
            0 => varint(&mut wire).map(|_| 0),
            1 => Some(8),
            2 => varint(&mut wire).and_then(|n| usize::try_from(n).ok()),
            5 => Some(4),
            _ => None,
        };
        let Some(skip) = skip.filter(|n| *n <= wire.len()) else {
            break;
        };
        wire = &wire[skip..];
        count += 1;
    }
    count
}

fn varint(wire: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for (i, byte) in wire.iter().take(10).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *wire = &wire[i + 1..];
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::ObjectVersion;
    use prost::Message;

    fn request(versions: usize) -> Vec<u8> {
        MountRequest {
            attributes: "{}".into(),
            target_path: "/t".into(),
            current_object_version: vec![ObjectVersion::default(); versions],
            ..Default::default()
        }
        .encode_to_vec()
    }

    #[test]
    fn fields_are_counted_as_encoded() {
        assert_eq!(top_level_fields(&request(0), usize::MAX), 2);
        assert_eq!(top_level_fields(&request(100), usize::MAX), 102);
        // Stops early.
        assert_eq!(top_level_fields(&request(100), 10), 11);
        let versions = MountResponse {
            object_version: vec![ObjectVersion::default(); 3],
            ..Default::default()
        };
        assert_eq!(top_level_fields(&versions.encode_to_vec(), 100), 3);
    }

    #[test]
    fn malformed_wire_ends_the_count_without_panicking() {
        for wire in [
            &[0x0a, 0xff][..],
            &[0xff; 12][..],
            &[0x0b][..],
            &[0x0a, 0x05, 1][..],
        ] {
            assert!(top_level_fields(wire, 100) <= 1, "{wire:?}");
        }
        for _ in 0..2000 {
            let n = fastrand::usize(0..64);
            let wire: Vec<u8> = (0..n).map(|_| fastrand::u8(..)).collect();
            let _ = top_level_fields(&wire, 10);
        }
    }

    #[test]
    fn the_bound_admits_what_a_driver_sends() {
        assert!(
            top_level_fields(&request(MAX_CURRENT_VERSIONS), usize::MAX)
                <= MountRequest::MAX_FIELDS
        );
        assert!(
            top_level_fields(
                &request(MAX_CURRENT_VERSIONS + 20),
                MountRequest::MAX_FIELDS
            ) > MountRequest::MAX_FIELDS
        );
    }
}
