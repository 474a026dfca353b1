//! The byte format: preamble, length-prefixed frames, and the bincode codec shared by everything.

use crate::error::RemoteFailure;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt};

pub const MAGIC: [u8; 4] = *b"AERI";
/// 2: writes carry their client request; mutations carry it per operation.
pub const PROTOCOL_VERSION: u16 = 2;
pub const PREAMBLE_LEN: usize = 8;
/// Upper bound on what a decoder may allocate for one message, whatever a length field claims.
pub const DECODE_LIMIT: usize = 64 * 1024 * 1024;

pub fn preamble() -> [u8; PREAMBLE_LEN] {
    let v = PROTOCOL_VERSION.to_be_bytes();
    [MAGIC[0], MAGIC[1], MAGIC[2], MAGIC[3], v[0], v[1], 0, 0]
}

/// The protocol version in a peer's preamble, or why it is not one.
pub fn parse_preamble(bytes: &[u8; PREAMBLE_LEN]) -> Result<u16, String> {
    if bytes[..4] != MAGIC {
        return Err(format!("bad magic {:02x?}: not an aerie peer", &bytes[..4]));
    }
    Ok(u16::from_be_bytes([bytes[4], bytes[5]]))
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Frame {
    Request {
        id: u64,
        method: String,
        timeout_ms: u64,
        #[serde(with = "serde_bytes")]
        body: Vec<u8>,
    },
    Response {
        id: u64,
        outcome: Result<ByteBuf, RemoteFailure>,
    },
}

/// Bytes that serialize compactly (one length and a copy, not one call per byte).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByteBuf(#[serde(with = "serde_bytes")] pub Vec<u8>);

fn codec() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<DECODE_LIMIT>()
}

pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
    bincode::serde::encode_to_vec(value, codec()).map_err(|e| e.to_string())
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let (value, read) = aerie_common::codec::decode_bounded(bytes, DECODE_LIMIT)?;
    if read != bytes.len() {
        return Err(format!("{} trailing bytes after the message", bytes.len() - read));
    }
    Ok(value)
}

/// A frame ready to write: length prefix included.
pub fn encode_frame(frame: &Frame) -> Result<Vec<u8>, String> {
    let body = encode(frame)?;
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

#[derive(Debug, thiserror::Error)]
pub enum ReadFrameError {
    #[error("peer closed the connection")]
    Closed,
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("malformed frame: {0}")]
    Malformed(String),
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads one frame; never allocates more than `max` bytes for it.
pub async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R, max: usize) -> Result<Frame, ReadFrameError> {
    let mut len_bytes = [0u8; 4];
    match reader.read_exact(&mut len_bytes).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(ReadFrameError::Closed),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len_bytes) as usize;
    if len > max {
        return Err(ReadFrameError::TooLarge { len, max });
    }
    // The body grows as its bytes arrive: a length prefix alone allocates nothing large.
    let mut body = Vec::with_capacity(len.min(64 * 1024));
    let read = reader.take(len as u64).read_to_end(&mut body).await?;
    if read < len {
        return Err(ReadFrameError::Io(std::io::ErrorKind::UnexpectedEof.into()));
    }
    decode(&body).map_err(ReadFrameError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let frame = Frame::Request {
            id: 7,
            method: "meta.Beacon".into(),
            timeout_ms: 100,
            body: vec![1, 2, 3],
        };
        let bytes = encode_frame(&frame).unwrap();
        let len = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
        assert_eq!(len, bytes.len() - 4);
        match decode::<Frame>(&bytes[4..]).unwrap() {
            Frame::Request { id, method, body, .. } => {
                assert_eq!((id, method.as_str(), body), (7, "meta.Beacon", vec![1, 2, 3]));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn garbage_is_rejected_not_trusted() {
        // A length field claiming a huge vector must fail, not allocate.
        let garbage = [0x02, 0xfc, 0xff, 0xff, 0xff, 0x7f, 0x01];
        assert!(decode::<Frame>(&garbage).is_err());
        assert!(decode::<Frame>(&[]).is_err());
    }

    #[test]
    fn preamble_carries_version() {
        assert_eq!(parse_preamble(&preamble()).unwrap(), PROTOCOL_VERSION);
        assert!(parse_preamble(b"GET / HT").is_err());
    }

    #[tokio::test]
    async fn oversized_frame_is_refused_before_reading_it() {
        let mut bytes: &[u8] = &[0x00, 0x10, 0x00, 0x00];
        let err = read_frame(&mut bytes, 1024).await.unwrap_err();
        assert!(matches!(
            err,
            ReadFrameError::TooLarge {
                len: 1_048_576,
                max: 1024
            }
        ));
    }
}
