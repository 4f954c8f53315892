//! RFC 2782 SRV target selection: priority order, then weighted random order within a priority.
//!
//! DNS servers hand SRV answers back in whatever order they like (hickory-server returns them in zone
//! order, priority 20 before 10 included), so the order is always ours to compute. The randomness is the
//! caller's, which keeps this module sans-IO and lets tests replay a selection exactly.

/// One SRV resource record (RFC 2782), as far as target selection cares.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SrvRecord {
    /// Lower is preferred; every target of a lower priority is tried before any of a higher one.
    pub priority: u16,
    /// Relative chance of being tried first among the records of the same priority.
    pub weight: u16,
    /// TCP port of the service on `target`.
    pub port: u16,
    /// Host name of the target, with or without the trailing dot. `"."` means "no service" (see
    /// [`SrvOrder::ServiceUnavailable`]).
    pub target: String,
}

impl SrvRecord {
    /// Whether the target is the root domain, which RFC 2782 uses to say the service does not exist.
    pub fn is_root_target(&self) -> bool {
        let target = self.target.strip_suffix('.').unwrap_or(&self.target);
        target.is_empty()
    }
}

/// Outcome of [`order_srv`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SrvOrder {
    /// Records in the order they should be tried. Empty when the input was empty, which callers must
    /// treat like "no SRV records" (RFC 2782 then falls back to address records).
    Targets(Vec<SrvRecord>),
    /// The domain published a `"."` target: the service is decidedly not available there (RFC 2782), and
    /// a client must not fall back to address records (RFC 6120 §3.2.1, XEP-0368).
    ServiceUnavailable,
}

/// Orders SRV records as RFC 2782 prescribes: ascending priority, and within one priority a weighted
/// random selection.
///
/// `random(n)` must return a uniformly distributed value in `0..=n`; values above `n` are clamped.
///
/// RFC 2782 only defines "no service" for a single record whose target is `"."`. A set made only of such
/// records is treated the same way, and `"."` records mixed with real ones are dropped, because there is
/// nothing to connect to at the root.
pub fn order_srv(records: Vec<SrvRecord>, random: &mut impl FnMut(u32) -> u32) -> SrvOrder {
    if !records.is_empty() && records.iter().all(SrvRecord::is_root_target) {
        return SrvOrder::ServiceUnavailable;
    }
    let mut records: Vec<SrvRecord> = records
        .into_iter()
        .filter(|r| !r.is_root_target())
        .collect();
    records.sort_by_key(|r| r.priority);

    let mut ordered = Vec::with_capacity(records.len());
    let mut rest = records.as_slice();
    while let Some(first) = rest.first() {
        let priority = first.priority;
        let group_len = rest.iter().take_while(|r| r.priority == priority).count();
        let (group, tail) = rest.split_at(group_len);
        order_group(group, random, &mut ordered);
        rest = tail;
    }
    SrvOrder::Targets(ordered)
}

/// Appends one priority group to `out` in weighted random order (RFC 2782, "Weight").
fn order_group(group: &[SrvRecord], random: &mut impl FnMut(u32) -> u32, out: &mut Vec<SrvRecord>) {
    // RFC 2782 puts zero-weight records at the start of the running-sum list, so they are only chosen
    // when the random number is 0; a stable partition keeps the rest in their received order.
    let mut pending: Vec<SrvRecord> = group.iter().filter(|r| r.weight == 0).cloned().collect();
    pending.extend(group.iter().filter(|r| r.weight != 0).cloned());

    while !pending.is_empty() {
        let index = if pending.len() == 1 {
            0
        } else {
            // Saturating: a DNS message cannot carry enough records to overflow a u32 of weights, but
            // the input here is arbitrary; saturation only biases towards the last record.
            let total = pending
                .iter()
                .fold(0u32, |sum, r| sum.saturating_add(u32::from(r.weight)));
            let pick = random(total).min(total);
            let mut running = 0u32;
            pending
                .iter()
                .position(|r| {
                    running = running.saturating_add(u32::from(r.weight));
                    running >= pick
                })
                .unwrap_or(pending.len() - 1)
        };
        out.push(pending.remove(index));
    }
}

/// splitmix64, the randomness behind SRV weight selection. Load spreading needs no cryptographic quality,
/// only a different sequence per seed; the caller seeds it (per process and call in production, fixed in
/// tests), which keeps this module free of any source of randomness of its own.
#[derive(Debug, Clone)]
pub struct WeightRandom(u64);

impl WeightRandom {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..=n` (Lemire's multiply-shift; the bias is below 2^-32), as [`order_srv`] expects.
    pub fn upto(&mut self, n: u32) -> u32 {
        let scaled = ((self.next_u64() >> 32) * (u64::from(n) + 1)) >> 32;
        u32::try_from(scaled).unwrap_or(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rec(priority: u16, weight: u16, port: u16, target: &str) -> SrvRecord {
        SrvRecord {
            priority,
            weight,
            port,
            target: target.to_owned(),
        }
    }

    fn targets(order: SrvOrder) -> Vec<String> {
        match order {
            SrvOrder::Targets(records) => records.into_iter().map(|r| r.target).collect(),
            SrvOrder::ServiceUnavailable => panic!("unexpected ServiceUnavailable"),
        }
    }

    #[test]
    fn table() {
        struct Case {
            name: &'static str,
            input: Vec<SrvRecord>,
            // Every call to `random` returns this value, even when it is out of range.
            random: u32,
            expected: Option<Vec<&'static str>>,
        }
        let cases = [
            Case {
                name: "empty",
                input: vec![],
                random: 0,
                expected: Some(vec![]),
            },
            Case {
                name: "single",
                input: vec![rec(10, 5, 5269, "a.example.")],
                random: 0,
                expected: Some(vec!["a.example."]),
            },
            Case {
                name: "priority order beats wire order",
                input: vec![
                    rec(20, 0, 5269, "c.example."),
                    rec(10, 0, 5269, "a.example."),
                    rec(15, 0, 5269, "b.example."),
                ],
                random: 0,
                expected: Some(vec!["a.example.", "b.example.", "c.example."]),
            },
            Case {
                name: "random 0 picks zero-weight first",
                input: vec![rec(10, 60, 5269, "heavy."), rec(10, 0, 5269, "zero.")],
                random: 0,
                expected: Some(vec!["zero.", "heavy."]),
            },
            Case {
                name: "random 1 skips zero-weight",
                input: vec![rec(10, 0, 5269, "zero."), rec(10, 60, 5269, "heavy.")],
                random: 1,
                expected: Some(vec!["heavy.", "zero."]),
            },
            Case {
                name: "running sum boundary is inclusive",
                input: vec![rec(10, 60, 5269, "a."), rec(10, 40, 5269, "b.")],
                random: 60,
                expected: Some(vec!["a.", "b."]),
            },
            Case {
                name: "just past the boundary",
                input: vec![rec(10, 60, 5269, "a."), rec(10, 40, 5269, "b.")],
                random: 61,
                expected: Some(vec!["b.", "a."]),
            },
            Case {
                name: "out-of-range random is clamped to the last",
                input: vec![rec(10, 1, 5269, "a."), rec(10, 1, 5269, "b.")],
                random: u32::MAX,
                expected: Some(vec!["b.", "a."]),
            },
            Case {
                name: "all zero weights keep received order",
                input: vec![rec(5, 0, 1, "x."), rec(5, 0, 2, "y."), rec(5, 0, 3, "z.")],
                random: 0,
                expected: Some(vec!["x.", "y.", "z."]),
            },
            Case {
                name: "single dot target",
                input: vec![rec(0, 0, 0, ".")],
                random: 0,
                expected: None,
            },
            Case {
                name: "single empty target",
                input: vec![rec(0, 0, 5269, "")],
                random: 0,
                expected: None,
            },
            Case {
                name: "only dot targets",
                input: vec![rec(0, 0, 0, "."), rec(1, 0, 0, ".")],
                random: 0,
                expected: None,
            },
            Case {
                name: "dot mixed with real targets is dropped",
                input: vec![rec(0, 0, 0, "."), rec(1, 0, 5269, "real.example.")],
                random: 0,
                expected: Some(vec!["real.example."]),
            },
            Case {
                name: "target without trailing dot is not root",
                input: vec![rec(0, 0, 5269, "example")],
                random: 0,
                expected: Some(vec!["example"]),
            },
        ];
        for case in cases {
            let fixed = case.random;
            let got = order_srv(case.input, &mut |_| fixed);
            match (got, case.expected) {
                (SrvOrder::ServiceUnavailable, None) => {}
                (got @ SrvOrder::Targets(_), Some(expected)) => {
                    assert_eq!(targets(got), expected, "case {}", case.name);
                }
                (got, expected) => panic!("case {}: got {got:?}, expected {expected:?}", case.name),
            }
        }
    }

    #[test]
    fn random_is_asked_for_the_group_weight_sum() {
        let mut asked = Vec::new();
        let input = vec![
            rec(10, 60, 5269, "a."),
            rec(10, 40, 5269, "b."),
            rec(20, 7, 5269, "c."),
            rec(20, 3, 5269, "d."),
        ];
        let _ = order_srv(input, &mut |n| {
            asked.push(n);
            0
        });
        // Single remaining records need no draw.
        assert_eq!(asked, vec![100, 10]);
    }

    #[test]
    fn weights_are_honoured() {
        let mut rng = WeightRandom::new(0x5158_2782);
        let draws = 10_000;
        let mut heavy_first = 0u32;
        for _ in 0..draws {
            let input = vec![rec(10, 10, 5269, "light."), rec(10, 90, 5269, "heavy.")];
            let order = targets(order_srv(input, &mut |n| rng.upto(n)));
            if order[0] == "heavy." {
                heavy_first += 1;
            }
        }
        // The draw is uniform over 0..=100 and "light." covers 0..=10, so "heavy." wins 90/101 of the time.
        let share = f64::from(heavy_first) / f64::from(draws);
        let expected = 90.0 / 101.0;
        assert!(
            (share - expected).abs() < 0.015,
            "heavy first {share}, expected ≈{expected}"
        );
    }

    #[test]
    fn zero_weight_is_rarely_first() {
        let mut rng = WeightRandom::new(7);
        let draws = 10_000;
        let mut zero_first = 0u32;
        for _ in 0..draws {
            let input = vec![rec(1, 100, 5269, "a."), rec(1, 0, 5269, "zero.")];
            if targets(order_srv(input, &mut |n| rng.upto(n)))[0] == "zero." {
                zero_first += 1;
            }
        }
        // Only a draw of exactly 0 out of 0..=100 selects it.
        let share = f64::from(zero_first) / f64::from(draws);
        assert!(share < 0.03, "zero-weight first {share}");
    }

    fn arb_record() -> impl Strategy<Value = SrvRecord> {
        (
            0u16..4,
            any::<u16>(),
            any::<u16>(),
            "[a-z]{1,8}\\.example\\.",
        )
            .prop_map(|(priority, weight, port, target)| SrvRecord {
                priority,
                weight,
                port,
                target,
            })
    }

    proptest! {
        #[test]
        fn output_is_a_priority_sorted_permutation(
            records in proptest::collection::vec(arb_record(), 0..24),
            seed in any::<u64>(),
        ) {
            let mut rng = WeightRandom::new(seed);
            let SrvOrder::Targets(out) = order_srv(records.clone(), &mut |n| rng.upto(n)) else {
                return Err(TestCaseError::fail("ServiceUnavailable without a root target"));
            };
            prop_assert!(out.windows(2).all(|w| w[0].priority <= w[1].priority));
            let mut expected = records;
            let mut got = out;
            let key = |r: &SrvRecord| (r.priority, r.weight, r.port, r.target.clone());
            expected.sort_by_key(key);
            got.sort_by_key(key);
            prop_assert_eq!(got, expected);
        }
    }
}
