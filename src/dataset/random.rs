//! Seeded uniform random samples: for smoke tests only (reports label them synthetic).

use std::path::PathBuf;

use ndarray::{ArrayD, IxDyn};
use rand::distributions::{Distribution, Uniform};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::error::{DatasetError, DatasetErrorKind};
use super::source::{InputLayout, InputSource};
use super::DatasetSpec;

/// The range used when a random dataset states none.
pub(crate) const DEFAULT_RANGE: [f32; 2] = [0.0, 1.0];

/// Uniform samples for one input.
pub(crate) struct RandomSource {
    dataset: String,
    rng: ChaCha8Rng,
    uniform: Uniform<f32>,
    shape: Vec<usize>,
    cap: Option<usize>,
    next: usize,
}

impl RandomSource {
    /// A source for `layout`: ChaCha8 seeded with the dataset's `seed`, one stream per model input so inputs
    /// are independent and each input's data does not depend on how many other inputs there are.
    pub fn open(spec: &DatasetSpec, layout: &InputLayout) -> Result<RandomSource, DatasetError> {
        let fail =
            |kind| DatasetError::new(spec.name.clone(), kind).with_input(layout.name.clone());
        layout.check_feed("random", false).map_err(fail)?;
        let range = spec.range.unwrap_or(DEFAULT_RANGE);
        let [low, high] = range;
        if !(low.is_finite() && high.is_finite() && low <= high) {
            return Err(fail(DatasetErrorKind::BadRange { range }));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
        rng.set_stream(layout.index as u64);
        Ok(RandomSource {
            dataset: spec.name.clone(),
            rng,
            uniform: Uniform::new_inclusive(low, high),
            shape: layout.shape.clone(),
            cap: spec.samples,
            next: 0,
        })
    }
}

impl InputSource for RandomSource {
    fn dataset(&self) -> &str {
        &self.dataset
    }

    fn available(&self) -> Option<usize> {
        self.cap
    }

    fn is_synthetic(&self) -> bool {
        true
    }

    fn file_of(&self, _index: usize) -> Option<PathBuf> {
        None
    }

    fn read_next(&mut self, count: usize) -> Result<Vec<ArrayD<f32>>, DatasetError> {
        let count = self
            .cap
            .map_or(count, |cap| count.min(cap.saturating_sub(self.next)));
        let elements: usize = self.shape.iter().product();
        let mut samples = Vec::with_capacity(count);
        for _ in 0..count {
            let values: Vec<f32> = (0..elements)
                .map(|_| self.uniform.sample(&mut self.rng))
                .collect();
            let sample = ArrayD::from_shape_vec(IxDyn(&self.shape), values).map_err(|_| {
                DatasetError::new(
                    self.dataset.clone(),
                    DatasetErrorKind::ShapeMismatch {
                        found: vec![elements],
                        expected: self.shape.clone(),
                    },
                )
                .with_sample(self.next)
            })?;
            samples.push(sample);
            self.next += 1;
        }
        Ok(samples)
    }
}
