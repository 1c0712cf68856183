//! The order-independent fingerprint verification compares.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// An order-independent fingerprint of a set of records: equal sets give equal
/// fingerprints whatever order they are read in, so source and target can be scanned in
/// parallel pages and compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Fingerprint {
    /// Records folded in.
    pub count: u64,
    /// Wrapping sum of the first 16 bytes of SHA-256(key, 0, body) per record; hex in
    /// JSON, because Step Functions state and certificates carry no 128-bit numbers.
    #[serde(with = "hex_u128")]
    pub sum: u128,
}

mod hex_u128 {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(v: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{v:032x}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        let t = String::deserialize(d)?;
        u128::from_str_radix(&t, 16).map_err(D::Error::custom)
    }
}

impl Fingerprint {
    /// Folds one record in.
    pub fn add(&mut self, key: &str, body: &[u8]) {
        let d = Sha256::new()
            .chain_update(key.as_bytes())
            .chain_update([0])
            .chain_update(body)
            .finalize();
        let mut b = [0u8; 16];
        b.copy_from_slice(&d[..16]);
        self.count += 1;
        self.sum = self.sum.wrapping_add(u128::from_be_bytes(b));
    }

    /// Combines two fingerprints of disjoint sets.
    pub fn merge(self, other: Fingerprint) -> Fingerprint {
        Fingerprint {
            count: self.count + other.count,
            sum: self.sum.wrapping_add(other.sum),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_ignore_order_and_see_any_difference() {
        let recs = [("a", "1"), ("b", "2"), ("c", "3")];
        let mut f1 = Fingerprint::default();
        recs.iter().for_each(|(k, v)| f1.add(k, v.as_bytes()));
        let mut f2 = Fingerprint::default();
        recs.iter().rev().for_each(|(k, v)| f2.add(k, v.as_bytes()));
        assert_eq!(f1, f2);
        let (mut a, mut b) = (Fingerprint::default(), Fingerprint::default());
        a.add("a", b"1");
        b.add("b", b"2");
        b.add("c", b"3");
        assert_eq!(a.merge(b), f1);
        let mut f3 = Fingerprint::default();
        f3.add("a", b"1");
        f3.add("b", b"2");
        f3.add("c", b"4");
        assert_ne!(f1, f3);
    }

    #[test]
    fn the_sum_is_hex_in_json() {
        let fp = serde_json::to_value(Fingerprint {
            count: 1,
            sum: u128::MAX,
        })
        .expect("json");
        assert_eq!(fp["sum"], "ffffffffffffffffffffffffffffffff");
        let back: Fingerprint = serde_json::from_value(fp).expect("parse");
        assert_eq!(back.sum, u128::MAX);
    }
}
