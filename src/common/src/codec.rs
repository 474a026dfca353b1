//! Decoding bincode from bytes of unknown origin (frames off a socket, records off a disk) without
//! letting a length field decide how much memory is allocated.
//!
//! A decoder allocates what a string or byte field's length claims, up to the configuration's
//! limit, before it reads the bytes. No valid message carries a field longer than the bytes that
//! hold it, and a container claims at most its elements' in-memory size (32 bytes at most per
//! encoded byte for Aerie's messages). So the limit follows the input: the smallest of a few
//! fixed limits (bincode's are compile-time) that covers 32 × the input, never above `max`.
//! What a damaged input can make the decoder allocate is then about 32 × its own size, plus
//! serde's cautious preallocation of a sequence (never above 1 MiB, whatever is claimed).

use serde::de::DeserializeOwned;

const TIERS: [usize; 5] = [64 << 10, 1 << 20, 16 << 20, 64 << 20, 128 << 20];

/// How much the decode of an input of `len` bytes may claim, given the caller's ceiling.
fn limit_for(len: usize, max: usize) -> usize {
    let need = len.saturating_mul(32);
    let fitting = TIERS
        .iter()
        .copied()
        .find(|t| *t >= need)
        .unwrap_or(TIERS[TIERS.len() - 1]);
    let capped = TIERS.iter().copied().filter(|t| *t <= max).max().unwrap_or(TIERS[0]);
    fitting.min(capped)
}

/// Decodes a value from the front of `bytes`; returns it and the bytes it used.
pub fn decode_bounded<T: DeserializeOwned>(bytes: &[u8], max: usize) -> Result<(T, usize), String> {
    use bincode::config::standard;
    let decoded = match limit_for(bytes.len(), max) {
        l if l == TIERS[0] => bincode::serde::decode_from_slice(bytes, standard().with_limit::<{ 64 << 10 }>()),
        l if l == TIERS[1] => bincode::serde::decode_from_slice(bytes, standard().with_limit::<{ 1 << 20 }>()),
        l if l == TIERS[2] => bincode::serde::decode_from_slice(bytes, standard().with_limit::<{ 16 << 20 }>()),
        l if l == TIERS[3] => bincode::serde::decode_from_slice(bytes, standard().with_limit::<{ 64 << 20 }>()),
        _ => bincode::serde::decode_from_slice(bytes, standard().with_limit::<{ 128 << 20 }>()),
    };
    decoded.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_follows_the_input_up_to_the_ceiling() {
        assert_eq!(limit_for(10, 64 << 20), 64 << 10);
        assert_eq!(limit_for(10_000, 64 << 20), 1 << 20);
        assert_eq!(limit_for(100_000, 64 << 20), 16 << 20);
        assert_eq!(limit_for(1 << 20, 64 << 20), 64 << 20);
        assert_eq!(limit_for(10 << 20, 64 << 20), 64 << 20, "never above the ceiling");
        assert_eq!(limit_for(10 << 20, 128 << 20), 128 << 20);
    }

    #[test]
    fn a_short_input_claiming_a_long_string_fails_without_allocating_it() {
        // A string whose length field claims 9 MB, in 6 bytes.
        let bytes = [0xfc, 0x32, 0x88, 0x8e, 0x00, b'x'];
        assert!(decode_bounded::<String>(&bytes, 64 << 20).is_err());
        let ok = bincode::serde::encode_to_vec("hello".to_string(), bincode::config::standard()).unwrap();
        assert_eq!(
            decode_bounded::<String>(&ok, 64 << 20).unwrap(),
            ("hello".to_string(), ok.len())
        );
    }
}
