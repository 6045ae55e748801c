//! Key encoding helpers: big-endian so that byte order is numeric order.

/// A u64 as 8 big-endian bytes.
pub fn u64_key(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

/// The smallest key greater than every key starting with `prefix`, or None when the prefix
/// is all 0xFF (then the scan is unbounded above).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_last_byte_and_carries() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[1, 0xFF]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xFF, 0xFF]), None);
        assert_eq!(prefix_end(b""), None);
    }

    #[test]
    fn u64_keys_sort_numerically() {
        assert!(u64_key(255) < u64_key(256));
        assert!(u64_key(1) < u64_key(u64::MAX));
    }
}
