//! The weigher: free RAM, normalised over the candidates, times `ram_weight_multiplier`
//! (positive spreads instances over hosts, negative packs them).

use super::candidate::Candidate;

/// Orders `candidates` best first: by weight, then by host name so equal hosts order the same
/// way every time.
pub(crate) fn sort_by_weight(candidates: &mut [Candidate<'_>], ram_weight_multiplier: f64) {
    let free = |c: &Candidate<'_>| c.limit.memory_mb.saturating_sub(c.used.memory_mb) as f64;
    let (min, max) = candidates
        .iter()
        .map(free)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), f| {
            (lo.min(f), hi.max(f))
        });
    let span = max - min;
    let weight = |c: &Candidate<'_>| {
        let normalised = if span > 0.0 {
            (free(c) - min) / span
        } else {
            0.0
        };
        normalised * ram_weight_multiplier
    };
    candidates.sort_by(|a, b| {
        weight(b)
            .total_cmp(&weight(a))
            .then_with(|| a.host.cmp(b.host))
    });
}
