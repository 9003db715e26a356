//! How many posts a fan-out keeps in flight: learnt while it runs, from its own throughput and
//! the 429s it meets, so a fan-out fills the account's quota at real round trips without
//! hammering it, and does not pile posts onto a busy CPU for nothing.

use std::time::Instant;

/// How many posts to keep in flight, learnt during the fan-out.
///
/// Posts take a network round trip each, so throughput is about the limit over the round trip
/// until something else (the account's quota, the CPU) caps it. The limit therefore grows while
/// throughput grows: after each window of as many completions as the limit, it compares the
/// window's completion rate with the best one so far. While the rate keeps rising by a tenth or
/// more, the limit doubles (and, once a 429 was seen, grows by an eighth). A growth that bought
/// no such rise is taken back, and the limit holds where the rate was best: on a busy CPU more
/// posts in flight only wait longer, and cost more. A throttled post halves it. Posts already in
/// flight when the limit fell were sent under the old limit, so their throttling does not halve
/// it again. The limit stays within 1 and the configured ceiling.
#[derive(Debug, Clone)]
pub struct AdaptiveLimit {
    current: usize,
    max: usize,
    /// Doubling until the first 429, gentler growth after.
    slow_start: bool,
    /// Completions to ignore for decreases: those in flight when the limit last fell.
    grace: usize,
    window: Window,
}

/// One window of completions, for the rate the limit is judged by.
#[derive(Debug, Clone, Default)]
struct Window {
    started: Option<Instant>,
    completed: usize,
    /// The best rate of a whole window so far, completions per second, and the limit it came
    /// with.
    best: Option<(f64, usize)>,
    /// The limit before the last growth, while that growth is on trial.
    trial_from: Option<usize>,
}

/// How much faster a window must complete than the one before for the limit to grow.
const GROWTH_THRESHOLD: f64 = 1.1;

impl AdaptiveLimit {
    /// A limit starting at `initial`, never rising above `max` (both at least 1).
    pub fn new(initial: usize, max: usize) -> Self {
        let max = max.max(1);
        Self {
            current: initial.clamp(1, max),
            max,
            slow_start: true,
            grace: 0,
            window: Window::default(),
        }
    }

    /// How many posts may be in flight now.
    pub fn current(&self) -> usize {
        self.current
    }

    /// A post was throttled: halves the limit (at least 1), unless the post was already in flight
    /// when it last fell.
    pub fn on_throttled(&mut self) {
        self.slow_start = false;
        // Throughput from before the halving says nothing about the new limit.
        self.window = Window::default();
        if self.grace > 0 {
            self.grace -= 1;
            return;
        }
        // The other posts in flight were sent under the old limit.
        self.grace = self.current.saturating_sub(1);
        self.current = (self.current / 2).max(1);
    }

    /// A post went through unthrottled at `now`: once a window of as many completions as the
    /// limit is done, grows the limit if the window completed faster than the last.
    pub fn on_success(&mut self, now: Instant) {
        self.grace = self.grace.saturating_sub(1);
        let window = &mut self.window;
        let Some(started) = window.started else {
            window.started = Some(now);
            return;
        };
        window.completed += 1;
        if window.completed < self.current {
            return;
        }
        let elapsed = now.saturating_duration_since(started).as_secs_f64();
        let rate = window.completed as f64 / elapsed.max(1e-6);
        window.started = Some(now);
        window.completed = 0;
        let faster = window
            .best
            .is_none_or(|(best, _)| rate >= best * GROWTH_THRESHOLD);
        if faster {
            window.best = Some((rate, self.current));
            let step = if self.slow_start {
                self.current
            } else {
                (self.current / 8).max(1)
            };
            let grown = (self.current + step).min(self.max);
            window.trial_from = (grown > self.current).then_some(self.current);
            self.current = grown;
        } else if let Some(before) = window.trial_from.take() {
            // The last growth bought nothing: back to where the rate was best, and hold.
            self.current = before;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::AdaptiveLimit;

    /// Completes one window of `limit.current()` posts, each `round_trip / in flight` apart,
    /// as a fixed round trip with the limit in flight gives; returns the time after it.
    fn window(limit: &mut AdaptiveLimit, mut now: Instant, spacing: Duration) -> Instant {
        for _ in 0..limit.current() {
            now += spacing;
            limit.on_success(now);
        }
        now
    }

    #[test]
    fn the_limit_doubles_while_throughput_grows_with_it() {
        let mut limit = AdaptiveLimit::new(64, 512);
        let round_trip = Duration::from_millis(20);
        let mut now = Instant::now();
        limit.on_success(now);
        let mut seen = Vec::new();
        for _ in 0..5 {
            let spacing = round_trip / limit.current() as u32;
            now = window(&mut limit, now, spacing);
            seen.push(limit.current());
        }
        assert_eq!(seen, [128, 256, 512, 512, 512], "capped at the ceiling");
    }

    #[test]
    fn a_growth_that_buys_nothing_is_taken_back() {
        let mut limit = AdaptiveLimit::new(64, 512);
        let mut now = Instant::now();
        limit.on_success(now);
        // A fixed rate (a busy CPU, a capped endpoint): more in flight only waits longer.
        let spacing = Duration::from_micros(50);
        now = window(&mut limit, now, spacing);
        assert_eq!(
            limit.current(),
            128,
            "nothing to compare the first window with"
        );
        now = window(&mut limit, now, spacing);
        assert_eq!(limit.current(), 64, "no faster at 128: back to 64");
        now = window(&mut limit, now, spacing);
        assert_eq!(limit.current(), 64, "and it holds");
        window(&mut limit, now, spacing / 2);
        assert_eq!(limit.current(), 128, "faster again: grow");
    }

    #[test]
    fn a_slower_window_after_a_growth_goes_back() {
        let mut limit = AdaptiveLimit::new(64, 512);
        let mut now = Instant::now();
        limit.on_success(now);
        now = window(&mut limit, now, Duration::from_micros(50));
        assert_eq!(limit.current(), 128);
        // More in flight made every post slower (contention): worse than before.
        window(&mut limit, now, Duration::from_micros(80));
        assert_eq!(limit.current(), 64);
    }

    #[test]
    fn throttling_halves_the_limit_once_per_window() {
        let mut limit = AdaptiveLimit::new(64, 64);
        limit.on_throttled();
        assert_eq!(limit.current(), 32);
        // The other 63 posts were in flight under the old limit: no further halving.
        for _ in 0..63 {
            limit.on_throttled();
        }
        assert_eq!(limit.current(), 32);
        limit.on_throttled();
        assert_eq!(limit.current(), 16);
    }

    #[test]
    fn the_limit_never_drops_below_one() {
        let mut limit = AdaptiveLimit::new(4, 4);
        for _ in 0..100 {
            limit.on_throttled();
        }
        assert_eq!(limit.current(), 1);
    }

    #[test]
    fn after_a_429_growth_is_by_an_eighth_up_to_the_ceiling() {
        let mut limit = AdaptiveLimit::new(64, 80);
        limit.on_throttled();
        assert_eq!(limit.current(), 32);
        let mut now = Instant::now();
        limit.on_success(now);
        let mut spacing = Duration::from_micros(400);
        for expected in [36, 40, 45, 50] {
            now = window(&mut limit, now, spacing);
            assert_eq!(limit.current(), expected);
            spacing /= 2;
        }
        for _ in 0..20 {
            now = window(&mut limit, now, spacing);
            spacing /= 2;
        }
        assert_eq!(limit.current(), 80, "capped at the ceiling");
    }
}
