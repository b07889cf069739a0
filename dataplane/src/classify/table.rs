//! The exact-match table of one tuple-space group: masked header key →
//! lowest filter order with that key.
//!
//! Open addressing with linear probing over a slot array of `u64`s
//! (`tag << 32 | entry + 1`, 0 = empty) that is at most half full, so a miss
//! costs one or two 8-byte slot reads and never touches the entries; a hit
//! reads one 64-byte entry to confirm the key. Tiny tables (the common
//! "one port rule" group) skip hashing and compare their few entries
//! directly. Built once at compile time; lookups never allocate.

/// A packed, masked header key. Field layout (shared with the packet side
/// in `mod.rs`):
/// - `w0`: ethertype << 48 | outer VLAN id << 32 | sport << 16 | dport
/// - `w1`: IP version (4 or 6) << 16 | protocol << 8 | TOS byte
/// - `src`, `dst`: addresses (IPv4 mapped into the low 32 bits + ::ffff).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(super) struct Key {
    pub src: u128,
    pub dst: u128,
    pub w0: u64,
    pub w1: u64,
}

impl Key {
    #[inline(always)]
    pub fn and(&self, mask: &Key) -> Key {
        Key {
            src: self.src & mask.src,
            dst: self.dst & mask.dst,
            w0: self.w0 & mask.w0,
            w1: self.w1 & mask.w1,
        }
    }

    /// Unseeded folded-multiply hash. Keys come from the operator's config,
    /// not from the wire, so chosen collisions can only slow lookups of the
    /// few keys that collide, never grow a probe chain at run time.
    #[inline(always)]
    fn hash(&self) -> u64 {
        let a = fold_mul(
            (self.src as u64) ^ 0x243f_6a88_85a3_08d3,
            ((self.src >> 64) as u64) ^ 0x1319_8a2e_0370_7344,
        );
        let b = fold_mul(
            (self.dst as u64) ^ 0xa409_3822_299f_31d0,
            ((self.dst >> 64) as u64) ^ 0x082e_fa98_ec4e_6c89,
        );
        fold_mul(
            a ^ self.w0 ^ 0x4528_21e6_38d0_1377,
            b ^ self.w1 ^ 0xbe54_66cf_34e9_0c6c,
        )
    }
}

#[inline(always)]
fn fold_mul(a: u64, b: u64) -> u64 {
    let m = u128::from(a) * u128::from(b);
    (m as u64) ^ ((m >> 64) as u64)
}

/// Up to this many entries a table is scanned instead of hashed: comparing
/// four 48-byte keys costs less than one hash.
const SCAN_MAX: usize = 4;

#[derive(Clone, Debug, Default)]
pub(super) struct Table {
    /// (key, filter order), one per distinct key.
    entries: Vec<(Key, u32)>,
    /// Empty when the table is scanned; otherwise a power of two ≥ 2 ×
    /// entries.
    slots: Vec<u64>,
}

impl Table {
    /// Build from (key, order) pairs given in ascending order; for a key seen
    /// twice the first (lowest) order is kept.
    pub fn build(pairs: &[(Key, u32)]) -> Table {
        let mut seen = std::collections::HashSet::with_capacity(pairs.len());
        let entries: Vec<(Key, u32)> = pairs
            .iter()
            .copied()
            .filter(|(key, _)| seen.insert(*key))
            .collect();
        let slots = if entries.len() <= SCAN_MAX {
            Vec::new()
        } else {
            let n = (entries.len() * 2).next_power_of_two();
            let mut slots = vec![0u64; n];
            for (idx, (key, _)) in entries.iter().enumerate() {
                let h = key.hash();
                let mut i = (h as usize) & (n - 1);
                while slots[i] != 0 {
                    i = (i + 1) & (n - 1);
                }
                // entries.len() fits u32: the caller bounds filter counts.
                slots[i] = (h & 0xffff_ffff_0000_0000) | (idx as u64 + 1);
            }
            slots
        };
        Table { entries, slots }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Order of the filter whose masked key equals `key`.
    #[inline]
    pub fn get(&self, key: &Key) -> Option<u32> {
        if self.slots.is_empty() {
            return self
                .entries
                .iter()
                .find(|(k, _)| k == key)
                .map(|&(_, order)| order);
        }
        let mask = self.slots.len() - 1;
        let h = key.hash();
        let tag = h & 0xffff_ffff_0000_0000;
        let mut i = (h as usize) & mask;
        // At most half the slots are used, so an empty one ends every probe
        // long before this bound; the bound only makes termination obvious.
        for _ in 0..self.slots.len() {
            let slot = *self.slots.get(i)?;
            if slot == 0 {
                return None;
            }
            if slot & 0xffff_ffff_0000_0000 == tag {
                // The low half is entry + 1 (never 0 in a used slot).
                let idx = ((slot & 0xffff_ffff) as usize).wrapping_sub(1);
                if let Some((k, order)) = self.entries.get(idx) {
                    if k == key {
                        return Some(*order);
                    }
                }
            }
            i = (i + 1) & mask;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_and_scanned_tables_find_every_key_and_keep_first_order() {
        for n in [0usize, 1, 4, 5, 100, 10_000] {
            let mut pairs: Vec<(Key, u32)> = (0..n)
                .map(|i| {
                    let key = Key {
                        dst: 0xffff_c612_0000 | i as u128,
                        w1: 4 << 16,
                        ..Key::default()
                    };
                    (key, i as u32)
                })
                .collect();
            // A duplicate key later in order must not win.
            if let Some(&(k, _)) = pairs.first() {
                pairs.push((k, n as u32));
            }
            let t = Table::build(&pairs);
            assert_eq!(t.len(), n);
            for (i, (k, _)) in pairs.iter().take(n).enumerate() {
                assert_eq!(t.get(k), Some(i as u32));
            }
            let absent = Key {
                dst: 0xffff_c613_0000,
                ..Key::default()
            };
            assert_eq!(t.get(&absent), None);
        }
    }
}
