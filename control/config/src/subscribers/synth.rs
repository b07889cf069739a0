//! Generated subscriber files, for tests, benchmarks and the lab: `weir
//! subscribers generate` writes them.
//!
//! `circuits` circuits of one device each, with IPv4 addresses counted up
//! from a base (198.18.0.1 by default: the benchmarking range, 131,071
//! addresses) and an IPv6 /64 each, spread round-robin over `aps` access
//! points that hang ten to a site. Plans cycle through a few tiers, so the
//! tree has classes of different rates.

use std::fmt::Write;
use std::net::Ipv4Addr;

/// The plans generated circuits cycle through: download min and max, upload
/// min and max, Mbps.
pub const TIERS: [(f64, f64, f64, f64); 4] = [
    (2.5, 25.0, 0.5, 5.0),
    (10.0, 100.0, 2.0, 20.0),
    (25.0, 250.0, 5.0, 50.0),
    (0.5, 10.0, 0.25, 2.0),
];

/// What to generate.
#[derive(Clone, Copy, Debug)]
pub struct Synth {
    pub circuits: u32,
    /// Access points (0: every circuit under the root, and an empty
    /// network.json).
    pub aps: u32,
    /// The first circuit's IPv4 address; the others follow it.
    pub first: Ipv4Addr,
}

impl Synth {
    pub fn new(circuits: u32, aps: u32) -> Synth {
        Synth {
            circuits,
            aps,
            first: Ipv4Addr::new(198, 18, 0, 1),
        }
    }

    /// The IPv4 address of circuit `i` (None past the address space).
    pub fn address(&self, i: u32) -> Option<Ipv4Addr> {
        u32::from(self.first).checked_add(i).map(Ipv4Addr::from)
    }

    /// The plan of circuit `i`, from [`TIERS`].
    pub fn tier(i: u32) -> (f64, f64, f64, f64) {
        TIERS[i as usize % TIERS.len()]
    }

    /// The ShapedDevices.csv. Circuits whose address would run past
    /// 255.255.255.255 are left out.
    pub fn devices_csv(&self) -> String {
        let mut s = String::with_capacity(self.circuits as usize * 96);
        s.push_str("Circuit ID,Circuit Name,Device ID,Device Name,Parent Node,MAC,IPv4,IPv6,Download Min Mbps,Upload Min Mbps,Download Max Mbps,Upload Max Mbps,Comment\n");
        for i in 0..self.circuits {
            let Some(addr) = self.address(i) else { break };
            let parent = if self.aps == 0 {
                String::new()
            } else {
                format!("AP_{}", i % self.aps)
            };
            let (dmin, dmax, umin, umax) = Synth::tier(i);
            let _ = writeln!(
                s,
                "c{i},Circuit {i},d{i},Router,{parent},,{addr},2001:2:{:x}:{:x}::/64,{dmin},{umin},{dmax},{umax},",
                i >> 16,
                i & 0xffff
            );
        }
        s
    }

    /// The network.json: sites of ten access points each. An AP's limit
    /// is a quarter of its circuits' max rates (ISPs oversell), a site's
    /// the sum of its APs'.
    pub fn network_json(&self) -> String {
        if self.aps == 0 {
            return "{}\n".to_string();
        }
        // The sums of the plans' max under each AP, Mbps.
        let mut down = vec![0.0f64; self.aps as usize];
        let mut up = vec![0.0f64; self.aps as usize];
        for i in 0..self.circuits {
            let (_, dmax, _, umax) = Synth::tier(i);
            down[(i % self.aps) as usize] += dmax;
            up[(i % self.aps) as usize] += umax;
        }
        let mut s = String::from("{\n");
        let sites = self.aps.div_ceil(10);
        for site in 0..sites {
            let aps = site * 10..((site + 1) * 10).min(self.aps);
            let limit = |v: &[f64]| {
                (v[aps.start as usize..aps.end as usize].iter().sum::<f64>() / 4.0)
                    .max(1.0)
                    .ceil()
            };
            let _ = writeln!(
                s,
                "  \"Site_{site}\": {{\"downloadBandwidthMbps\": {}, \"uploadBandwidthMbps\": {}, \"type\": \"Site\", \"children\": {{",
                limit(&down),
                limit(&up)
            );
            for (k, ap) in aps.clone().enumerate() {
                let a = ap as usize;
                let _ = writeln!(
                    s,
                    "    \"AP_{ap}\": {{\"downloadBandwidthMbps\": {}, \"uploadBandwidthMbps\": {}, \"type\": \"AP\"}}{}",
                    (down[a] / 4.0).max(1.0).ceil(),
                    (up[a] / 4.0).max(1.0).ceil(),
                    if k + 1 < aps.len() { "," } else { "" }
                );
            }
            let _ = writeln!(s, "  }}}}{}", if site + 1 < sites { "," } else { "" });
        }
        s.push_str("}\n");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::subscribers::{read_network, read_shaped_devices, unknown_parents};

    #[test]
    fn generated_files_read_back() {
        for (n, aps) in [(0, 0), (1, 0), (25, 3), (1000, 40)] {
            let g = Synth::new(n, aps);
            let d = read_shaped_devices("g.csv", &g.devices_csv()).expect("the CSV reads");
            let net = read_network("g.json", &g.network_json()).expect("the JSON reads");
            assert_eq!(d.circuits.len(), n as usize);
            assert_eq!(net.nodes.len(), (aps + aps.div_ceil(10)) as usize);
            let given = (aps > 0).then_some(&net);
            assert!(unknown_parents("g.csv", &d.circuits, given).is_empty());
        }
    }
}
