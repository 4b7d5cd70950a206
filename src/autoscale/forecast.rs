//! Forecasting a demand series (requests/s, CPU) a few minutes ahead, behind the small
//! [`Forecaster`] trait so another model can be added without touching the planner.
//!
//! Two models, both exponential smoothing over samples taken every `step_s` seconds:
//!
//! * [`Holt`] — double exponential smoothing: a *level* `l` and a *trend* `b` (change per
//!   step). On each observation `y` (arriving `k` steps after the previous one):
//!   `l' = α·y + (1−α)·(l + k·b)` and `b' = β·(l' − l)/k + (1−β)·b`; the forecast `h`
//!   steps ahead is `l + h·b`. `α` (0..=1) is how fast the level follows the data (higher:
//!   reacts faster, smooths less); `β` (0..=1) how fast the trend follows changes of slope.
//!   Initialised from the first two samples (level = second sample, trend = their
//!   difference per step), so a clean linear ramp is extrapolated exactly.
//! * [`HoltWinters`] — the additive seasonal variant, for a workload that repeats every
//!   `period` steps: a seasonal offset `s[i]` per phase of the period, with smoothing `γ`:
//!   `l' = α·(y − s[i]) + (1−α)·(l + b)`, `b' = β·(l' − l) + (1−β)·b`,
//!   `s[i]' = γ·(y − l') + (1−γ)·s[i]`; forecast `l + h·b + s[i+h mod period]`. It warms
//!   up on the first full period (level = its mean, offsets = deviations from it) and
//!   forecasts nothing before; [`Seasonal`] (what `--period` runs) lets Holt answer
//!   meanwhile.
//!
//! Both keep their one-step-ahead errors over the last `error_window` samples and report
//! them as [`Accuracy`] (MAE and MAPE), so every decision can say how good the forecast
//! behind it has been. Pure: no clock, no I/O. Called by the planner and the controller.

use std::collections::VecDeque;

use serde::Serialize;

/// Invalid smoothing settings.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    #[error("smoothing factor {name} = {value} must be between 0 and 1 (e.g. 0.5)")]
    Factor { name: &'static str, value: f64 },
    #[error("the sample step must be a positive number of seconds, got {0}")]
    Step(f64),
    #[error("a seasonal period needs at least 2 steps, got {0}")]
    Period(usize),
}

/// A model that learns a series and extrapolates it.
pub trait Forecaster: Send + Sync {
    /// Short name for explanations (`holt`, `holt-winters`).
    fn name(&self) -> &'static str;
    /// Feeds the sample `value` taken at `t` seconds (any origin; increasing). A sample
    /// not later than the previous one is ignored.
    fn observe(&mut self, t: f64, value: f64);
    /// The value expected `horizon_s` seconds after the last sample; `None` while the
    /// model has not seen enough to say.
    fn forecast(&self, horizon_s: f64) -> Option<f64>;
    /// How far off its one-step-ahead forecasts were over the last window.
    fn accuracy(&self) -> Option<Accuracy>;
}

/// Forecast error over the last window of one-step-ahead forecasts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Accuracy {
    /// Mean absolute error, in the series' unit.
    pub mae: f64,
    /// Mean absolute percentage error as a fraction (0.1 = 10 %), over samples whose
    /// actual value is not zero; `None` when every actual value was zero.
    pub mape: Option<f64>,
    /// Samples the figures cover.
    pub samples: usize,
}

/// Smoothing settings shared by both models.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Smoothing {
    /// Level factor α.
    pub alpha: f64,
    /// Trend factor β.
    pub beta: f64,
    /// Seasonal factor γ (Holt-Winters only).
    pub gamma: f64,
    /// Seconds between samples.
    pub step_s: f64,
    /// Samples the error figures cover.
    pub error_window: usize,
}

impl Default for Smoothing {
    /// α 0.5 and β 0.3 follow a ramp within a few samples without chasing every blip of
    /// one-second buckets; γ 0.3 lets a season adapt over a few periods.
    fn default() -> Smoothing {
        Smoothing {
            alpha: 0.5,
            beta: 0.3,
            gamma: 0.3,
            step_s: 1.0,
            error_window: 60,
        }
    }
}

impl Smoothing {
    /// Checks the factors and the step.
    pub fn validate(&self) -> Result<(), ModelError> {
        for (name, value) in [
            ("alpha", self.alpha),
            ("beta", self.beta),
            ("gamma", self.gamma),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(ModelError::Factor { name, value });
            }
        }
        if !(self.step_s.is_finite() && self.step_s > 0.0) {
            return Err(ModelError::Step(self.step_s));
        }
        Ok(())
    }
}

/// The one-step-ahead errors of the last window.
#[derive(Debug, Clone)]
struct Errors {
    window: usize,
    /// (forecast, actual)
    pairs: VecDeque<(f64, f64)>,
}

impl Errors {
    fn new(window: usize) -> Errors {
        Errors {
            window: window.max(1),
            pairs: VecDeque::new(),
        }
    }

    fn push(&mut self, forecast: f64, actual: f64) {
        if self.pairs.len() == self.window {
            self.pairs.pop_front();
        }
        self.pairs.push_back((forecast, actual));
    }

    fn accuracy(&self) -> Option<Accuracy> {
        if self.pairs.is_empty() {
            return None;
        }
        let n = self.pairs.len() as f64;
        let mae = self.pairs.iter().map(|(f, a)| (f - a).abs()).sum::<f64>() / n;
        let relative: Vec<f64> = self
            .pairs
            .iter()
            .filter(|(_, a)| *a != 0.0)
            .map(|(f, a)| ((f - a) / a).abs())
            .collect();
        let mape =
            (!relative.is_empty()).then(|| relative.iter().sum::<f64>() / relative.len() as f64);
        Some(Accuracy {
            mae,
            mape,
            samples: self.pairs.len(),
        })
    }
}

/// Steps between two sample times, at least 1 (a late sample is one step, not zero).
fn steps_between(from: f64, to: f64, step_s: f64) -> f64 {
    ((to - from) / step_s).round().max(1.0)
}

/// Holt's double exponential smoothing (level + trend).
#[derive(Debug, Clone)]
pub struct Holt {
    smoothing: Smoothing,
    /// (t, value) of the first sample until the second one arrives.
    first: Option<(f64, f64)>,
    /// (level, trend per step) once initialised.
    state: Option<(f64, f64)>,
    last_t: Option<f64>,
    errors: Errors,
}

impl Holt {
    /// A fresh model.
    pub fn new(smoothing: Smoothing) -> Result<Holt, ModelError> {
        smoothing.validate()?;
        Ok(Holt {
            smoothing,
            first: None,
            state: None,
            last_t: None,
            errors: Errors::new(smoothing.error_window),
        })
    }
}

impl Forecaster for Holt {
    fn name(&self) -> &'static str {
        "holt"
    }

    fn observe(&mut self, t: f64, value: f64) {
        if self.last_t.is_some_and(|last| t <= last) || !value.is_finite() {
            return;
        }
        let Smoothing {
            alpha,
            beta,
            step_s,
            ..
        } = self.smoothing;
        match (self.state, self.first, self.last_t) {
            (Some((level, trend)), _, Some(last)) => {
                let k = steps_between(last, t, step_s);
                let predicted = level + k * trend;
                self.errors.push(predicted, value);
                let new_level = alpha * value + (1.0 - alpha) * predicted;
                let new_trend = beta * (new_level - level) / k + (1.0 - beta) * trend;
                self.state = Some((new_level, new_trend));
            }
            (None, Some((t0, y0)), _) => {
                let k = steps_between(t0, t, step_s);
                self.state = Some((value, (value - y0) / k));
                self.first = None;
            }
            _ => self.first = Some((t, value)),
        }
        self.last_t = Some(t);
    }

    fn forecast(&self, horizon_s: f64) -> Option<f64> {
        let h = horizon_s.max(0.0) / self.smoothing.step_s;
        match (self.state, self.first) {
            (Some((level, trend)), _) => Some(level + h * trend),
            // One sample: the best guess is that sample.
            (None, Some((_, y0))) => Some(y0),
            (None, None) => None,
        }
    }

    fn accuracy(&self) -> Option<Accuracy> {
        self.errors.accuracy()
    }
}

/// Additive Holt-Winters: level, trend and one seasonal offset per phase of the period.
#[derive(Debug, Clone)]
pub struct HoltWinters {
    smoothing: Smoothing,
    period: usize,
    /// Samples of the first period, until it is complete.
    warmup: Vec<f64>,
    /// (level, trend) once warmed up.
    state: Option<(f64, f64)>,
    seasonal: Vec<f64>,
    /// Phase (0..period) of the last sample.
    phase: usize,
    last_t: Option<f64>,
    errors: Errors,
}

impl HoltWinters {
    /// A fresh model for a series that repeats every `period` steps.
    pub fn new(smoothing: Smoothing, period: usize) -> Result<HoltWinters, ModelError> {
        smoothing.validate()?;
        if period < 2 {
            return Err(ModelError::Period(period));
        }
        Ok(HoltWinters {
            smoothing,
            period,
            warmup: Vec::with_capacity(period),
            state: None,
            seasonal: vec![0.0; period],
            phase: 0,
            last_t: None,
            errors: Errors::new(smoothing.error_window),
        })
    }

    /// One smoothing step for a sample at `phase`.
    fn update(&mut self, phase: usize, value: f64) {
        let Smoothing {
            alpha, beta, gamma, ..
        } = self.smoothing;
        let Some((level, trend)) = self.state else {
            return;
        };
        let predicted = level + trend + self.seasonal[phase];
        self.errors.push(predicted, value);
        let new_level = alpha * (value - self.seasonal[phase]) + (1.0 - alpha) * (level + trend);
        let new_trend = beta * (new_level - level) + (1.0 - beta) * trend;
        self.seasonal[phase] = gamma * (value - new_level) + (1.0 - gamma) * self.seasonal[phase];
        self.state = Some((new_level, new_trend));
    }
}

impl Forecaster for HoltWinters {
    fn name(&self) -> &'static str {
        "holt-winters"
    }

    fn observe(&mut self, t: f64, value: f64) {
        if self.last_t.is_some_and(|last| t <= last) || !value.is_finite() {
            return;
        }
        let k = match self.last_t {
            Some(last) => steps_between(last, t, self.smoothing.step_s) as usize,
            None => 0,
        };
        self.last_t = Some(t);
        if self.state.is_none() {
            // Warm-up: a gap counts as repeats of the last value, so phases stay aligned.
            let fill = self.warmup.last().copied().unwrap_or(value);
            for _ in 1..k.min(self.period) {
                if self.warmup.len() + 1 < self.period {
                    self.warmup.push(fill);
                }
            }
            self.warmup.push(value);
            self.phase = self.warmup.len() - 1;
            if self.warmup.len() == self.period {
                let mean = self.warmup.iter().sum::<f64>() / self.period as f64;
                for (offset, y) in self.seasonal.iter_mut().zip(&self.warmup) {
                    *offset = y - mean;
                }
                self.state = Some((mean, 0.0));
            }
            return;
        }
        // Steps skipped by a gap advance the level along the trend (closed form, so a
        // long gap costs nothing).
        let skipped = k.saturating_sub(1);
        if let Some((level, trend)) = self.state {
            self.state = Some((level + skipped as f64 * trend, trend));
        }
        self.phase = (self.phase + skipped + 1) % self.period;
        self.update(self.phase, value);
    }

    fn forecast(&self, horizon_s: f64) -> Option<f64> {
        let (level, trend) = self.state?;
        let h = (horizon_s.max(0.0) / self.smoothing.step_s).round();
        let phase = (self.phase + h as usize) % self.period;
        Some(level + h * trend + self.seasonal[phase])
    }

    fn accuracy(&self) -> Option<Accuracy> {
        self.errors.accuracy()
    }
}

/// Holt-Winters with Holt's trend forecast standing in while the seasonal model warms up
/// on its first period — so the first ramp is met with the trend rather than with no
/// forecast at all. Both learn every sample; the seasonal one answers once it can.
#[derive(Debug, Clone)]
pub struct Seasonal {
    seasonal: HoltWinters,
    trend: Holt,
}

impl Seasonal {
    /// Both models over the same smoothing; `period` in steps.
    pub fn new(smoothing: Smoothing, period: usize) -> Result<Seasonal, ModelError> {
        Ok(Seasonal {
            seasonal: HoltWinters::new(smoothing, period)?,
            trend: Holt::new(smoothing)?,
        })
    }

    fn warm(&self) -> bool {
        self.seasonal.state.is_some()
    }
}

impl Forecaster for Seasonal {
    fn name(&self) -> &'static str {
        if self.warm() {
            self.seasonal.name()
        } else {
            "holt (holt-winters warming up)"
        }
    }

    fn observe(&mut self, t: f64, value: f64) {
        self.seasonal.observe(t, value);
        self.trend.observe(t, value);
    }

    fn forecast(&self, horizon_s: f64) -> Option<f64> {
        self.seasonal
            .forecast(horizon_s)
            .or_else(|| self.trend.forecast(horizon_s))
    }

    fn accuracy(&self) -> Option<Accuracy> {
        if self.warm() {
            self.seasonal.accuracy()
        } else {
            self.trend.accuracy()
        }
    }
}

/// The model the settings ask for: Holt-Winters (Holt while it warms up) with a period,
/// Holt without.
pub fn model(
    smoothing: Smoothing,
    period_s: Option<f64>,
) -> Result<Box<dyn Forecaster>, ModelError> {
    match period_s {
        Some(period) => {
            let steps = (period / smoothing.step_s).round().max(0.0) as usize;
            Ok(Box::new(Seasonal::new(smoothing, steps)?))
        }
        None => Ok(Box::new(Holt::new(smoothing)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(model: &mut dyn Forecaster, series: impl IntoIterator<Item = f64>) {
        for (i, y) in series.into_iter().enumerate() {
            model.observe(i as f64, y);
        }
    }

    #[test]
    fn holt_extrapolates_a_linear_ramp_exactly() {
        let mut holt = Holt::new(Smoothing::default()).unwrap();
        feed(&mut holt, (0..30).map(|i| 10.0 + 2.0 * i as f64));
        // Last sample at t=29 is 68; 10 s later the ramp is at 88.
        let f = holt.forecast(10.0).unwrap();
        assert!((f - 88.0).abs() < 1e-9, "{f}");
        assert!(holt.accuracy().unwrap().mae < 1e-9);
    }

    #[test]
    fn holt_follows_a_noisy_ramp_within_a_few_percent() {
        let mut holt = Holt::new(Smoothing::default()).unwrap();
        // Deterministic ±3 noise around 100 + 5/s.
        feed(
            &mut holt,
            (0..120).map(|i| 100.0 + 5.0 * i as f64 + [3.0, -3.0, 1.0, -1.0][i % 4]),
        );
        let expected = 100.0 + 5.0 * (119.0 + 30.0);
        let f = holt.forecast(30.0).unwrap();
        assert!((f - expected).abs() / expected < 0.05, "{f} vs {expected}");
    }

    #[test]
    fn a_constant_series_forecasts_the_constant() {
        let mut holt = Holt::new(Smoothing::default()).unwrap();
        feed(&mut holt, std::iter::repeat_n(42.0, 20));
        assert_eq!(holt.forecast(120.0), Some(42.0));
        let mut hw = HoltWinters::new(Smoothing::default(), 5).unwrap();
        feed(&mut hw, std::iter::repeat_n(42.0, 20));
        assert_eq!(hw.forecast(120.0), Some(42.0));
    }

    #[test]
    fn holt_winters_anticipates_a_square_wave_one_period_later() {
        // 5 s at 100 req/s, 5 s at 10, repeated.
        let wave = |i: usize| if i % 10 < 5 { 100.0 } else { 10.0 };
        let mut hw = HoltWinters::new(Smoothing::default(), 10).unwrap();
        // Four periods, ending on the last low sample (t=39): the next step is high.
        feed(&mut hw, (0..40).map(wave));
        for h in 1..=10 {
            let f = hw.forecast(h as f64).unwrap();
            let expected = wave(39 + h);
            assert!((f - expected).abs() < 5.0, "h={h}: {f} vs {expected}");
        }
        // Holt alone, without the season, expects the low phase to continue.
        let mut holt = Holt::new(Smoothing::default()).unwrap();
        feed(&mut holt, (0..40).map(wave));
        assert!(holt.forecast(1.0).unwrap() < 50.0);
    }

    #[test]
    fn holt_winters_forecasts_a_trending_noisy_sine_within_a_few_percent_and_beats_holt() {
        // 200 + 0.5/step trend, a ±60 sine of period 20, deterministic ±4 noise.
        let clean = |i: usize| {
            200.0 + 0.5 * i as f64 + 60.0 * (2.0 * std::f64::consts::PI * i as f64 / 20.0).sin()
        };
        let noisy = |i: usize| clean(i) + [4.0, -4.0, 2.0, -2.0, 0.0][i % 5];
        let mut hw = HoltWinters::new(Smoothing::default(), 20).unwrap();
        let mut holt = Holt::new(Smoothing::default()).unwrap();
        // Ten periods, then forecast each step of the next half period.
        feed(&mut hw, (0..200).map(noisy));
        feed(&mut holt, (0..200).map(noisy));
        let (mut hw_worst, mut holt_worst) = (0.0_f64, 0.0_f64);
        for h in 1..=10 {
            let expected = clean(199 + h);
            hw_worst = hw_worst.max((hw.forecast(h as f64).unwrap() - expected).abs() / expected);
            holt_worst =
                holt_worst.max((holt.forecast(h as f64).unwrap() - expected).abs() / expected);
        }
        assert!(hw_worst < 0.06, "Holt-Winters worst error {hw_worst}");
        assert!(
            holt_worst > 2.0 * hw_worst,
            "without the season Holt misses the turn: {holt_worst} vs {hw_worst}"
        );
        // Its error figures reflect the noise it cannot predict, not the season it can.
        let mae = hw.accuracy().unwrap().mae;
        assert!(mae < 15.0, "one-step MAE {mae}");
    }

    #[test]
    fn with_a_period_the_trend_answers_until_the_season_is_learnt() {
        let mut m = model(Smoothing::default(), Some(10.0)).unwrap();
        feed(&mut *m, (0..5).map(|i| 10.0 + 2.0 * i as f64));
        assert_eq!(m.name(), "holt (holt-winters warming up)");
        let f = m.forecast(5.0).unwrap();
        assert!((f - 28.0).abs() < 1e-9, "the ramp's trend: {f}");
        for t in 5..12 {
            m.observe(t as f64, 5.0);
        }
        assert_eq!(m.name(), "holt-winters", "a full period seen");
    }

    #[test]
    fn holt_winters_forecasts_nothing_before_a_full_period() {
        let mut hw = HoltWinters::new(Smoothing::default(), 10).unwrap();
        feed(&mut hw, [1.0, 2.0, 3.0]);
        assert_eq!(hw.forecast(1.0), None);
    }

    #[test]
    fn the_error_figures_match_a_hand_computed_case() {
        // α=1, β=0: the level is the last sample and the trend stays at its initial value.
        let smoothing = Smoothing {
            alpha: 1.0,
            beta: 0.0,
            ..Smoothing::default()
        };
        let mut holt = Holt::new(smoothing).unwrap();
        // Initialised on 0, 10 (trend 10/step); forecasts 20 (actual 20: error 0), then
        // 30 (actual 25: error 5). MAE = 2.5; MAPE = (0/20 + 5/25) / 2 = 0.1.
        feed(&mut holt, [0.0, 10.0, 20.0, 25.0]);
        let accuracy = holt.accuracy().unwrap();
        assert_eq!(accuracy.samples, 2);
        assert!((accuracy.mae - 2.5).abs() < 1e-12);
        assert!((accuracy.mape.unwrap() - 0.1).abs() < 1e-12);
    }

    #[test]
    fn the_error_window_keeps_only_the_last_samples() {
        let smoothing = Smoothing {
            alpha: 1.0,
            beta: 0.0,
            error_window: 1,
            ..Smoothing::default()
        };
        let mut holt = Holt::new(smoothing).unwrap();
        feed(&mut holt, [0.0, 10.0, 20.0, 25.0]);
        assert_eq!(holt.accuracy().unwrap().mae, 5.0);
    }

    #[test]
    fn a_gap_in_the_samples_counts_as_several_steps() {
        let mut holt = Holt::new(Smoothing::default()).unwrap();
        for (t, y) in [(0.0, 0.0), (1.0, 1.0), (2.0, 2.0), (5.0, 5.0), (6.0, 6.0)] {
            holt.observe(t, y);
        }
        assert!((holt.forecast(4.0).unwrap() - 10.0).abs() < 1e-9);
    }

    #[test]
    fn out_of_range_factors_are_refused_with_an_example() {
        let bad = Smoothing {
            alpha: 1.5,
            ..Smoothing::default()
        };
        let err = Holt::new(bad).unwrap_err();
        assert!(err.to_string().contains("alpha"), "{err}");
        assert!(HoltWinters::new(Smoothing::default(), 1).is_err());
    }
}
