//! YCSB's key choosers: uniform, and scrambled zipfian (Gray et al., "Quickly generating
//! billion-record synthetic databases", with the hot items spread by an FNV hash as YCSB does).

use rand::Rng;

pub struct Zipfian {
    items: u64,
    theta: f64,
    alpha: f64,
    zetan: f64,
    eta: f64,
}

fn zeta(n: u64, theta: f64) -> f64 {
    (1..=n).map(|i| 1.0 / (i as f64).powf(theta)).sum()
}

impl Zipfian {
    /// YCSB's default skew.
    pub const THETA: f64 = 0.99;

    pub fn new(items: u64, theta: f64) -> Self {
        let items = items.max(1);
        let zetan = zeta(items, theta);
        let zeta2 = zeta(2, theta);
        Zipfian {
            items,
            theta,
            alpha: 1.0 / (1.0 - theta),
            zetan,
            eta: (1.0 - (2.0 / items as f64).powf(1.0 - theta)) / (1.0 - zeta2 / zetan),
        }
    }

    /// A rank in `0..items`, small ranks far more often.
    pub fn next_rank(&self, rng: &mut impl Rng) -> u64 {
        let u: f64 = rng.random();
        let uz = u * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if uz < 1.0 + 0.5f64.powf(self.theta) {
            return 1;
        }
        let rank = (self.items as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        rank.min(self.items - 1)
    }

    /// A record index in `0..items`: zipfian popularity, hot records scattered over the key space.
    pub fn next_item(&self, rng: &mut impl Rng) -> u64 {
        fnv1a(self.next_rank(rng)) % self.items
    }
}

fn fnv1a(value: u64) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in value.to_le_bytes() {
        hash ^= byte as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn ranks_stay_in_range_and_are_skewed() {
        let zipf = Zipfian::new(1000, Zipfian::THETA);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut counts = vec![0u32; 1000];
        for _ in 0..100_000 {
            counts[zipf.next_rank(&mut rng) as usize] += 1;
        }
        assert!(
            counts[0] > counts[10] && counts[10] > counts[500],
            "{:?}",
            &counts[..12]
        );
        let top_ten: u32 = counts[..10].iter().sum();
        assert!(
            top_ten > 25_000,
            "the hottest 1% should draw a large share, drew {top_ten}"
        );
        for _ in 0..10_000 {
            assert!(zipf.next_item(&mut rng) < 1000);
        }
    }
}
