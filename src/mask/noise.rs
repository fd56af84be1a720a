//! `noise`: additive Laplace or Gaussian noise for numeric columns.
//!
//! The scale is given directly (`scale`) or through the differential-privacy parameters
//! (`epsilon`, `sensitivity`, and `delta` for Gaussian): Laplace b = sensitivity / epsilon,
//! Gaussian sigma = sensitivity * sqrt(2 ln(1.25 / delta)) / epsilon. Integers are rounded and
//! saturate at their type's range; an optional `clip` bounds the result.
//!
//! Randomness comes from ChaCha20. With a `seed` the output is reproducible; without one a fresh
//! seed is drawn from the operating system for every run. Each row draws from a fixed position of
//! the stream (its global row index), so the output does not depend on chunking or threads.
//!
//! This is perturbation for data release, not a certified DP mechanism: floating-point noise can
//! leak through its low-order bits (Mironov, CCS 2012). Use a DP library where a formal
//! guarantee is required.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, UInt16Type, UInt32Type,
    UInt64Type, UInt8Type,
};
use arrow_array::{Array, ArrayRef, ArrowPrimitiveType, PrimitiveArray};
use arrow_schema::DataType;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use sha2::{Digest, Sha256};

use super::generalize::num_like::ToF64;
use super::{ChunkContext, ColumnOperator};
use crate::error::{Error, Result};

/// Noise distribution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Distribution {
    /// Laplace with scale b.
    Laplace,
    /// Gaussian with standard deviation sigma.
    Gaussian,
}

/// 32-bit words of the random stream each row consumes (two u64 draws).
const WORDS_PER_ROW: u128 = 4;

/// Additive noise; see the module documentation.
pub struct Noise {
    distribution: Distribution,
    scale: f64,
    clip: Option<(f64, f64)>,
    stream_seed: [u8; 32],
}

/// Types `noise` accepts.
pub fn supports_type(data_type: &DataType) -> bool {
    data_type.is_integer() || data_type.is_floating()
}

impl Noise {
    /// Build one. `seed` makes runs reproducible; `column` separates the streams of two columns
    /// that share a seed.
    pub fn new(
        distribution: Distribution,
        scale: f64,
        clip: Option<(f64, f64)>,
        seed: Option<u64>,
        column: &str,
    ) -> Result<Self> {
        if !(scale.is_finite() && scale > 0.0) {
            return Err(Error::policy(
                "the noise scale must be a positive, finite number",
            ));
        }
        let stream_seed = match seed {
            Some(seed) => {
                let mut hasher = Sha256::new();
                hasher.update(b"amlguard/noise/v1");
                hasher.update(seed.to_be_bytes());
                hasher.update(column.as_bytes());
                hasher.finalize().into()
            }
            None => {
                let mut fresh = [0u8; 32];
                getrandom::getrandom(&mut fresh).map_err(|e| {
                    Error::invalid_data(
                        None,
                        format!("the operating system's random generator failed: {e}"),
                    )
                })?;
                fresh
            }
        };
        Ok(Self {
            distribution,
            scale,
            clip,
            stream_seed,
        })
    }

    fn sample(&self, rng: &mut ChaCha20Rng) -> f64 {
        // Uniforms strictly inside (0, 1) so that logarithms stay finite.
        let mut uniform = || ((rng.next_u64() >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64);
        let (u1, u2) = (uniform(), uniform());
        match self.distribution {
            Distribution::Laplace => {
                let centred = u1 - 0.5;
                -self.scale * centred.signum() * (1.0 - 2.0 * centred.abs()).ln()
            }
            Distribution::Gaussian => {
                self.scale * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
            }
        }
    }

    fn perturb<T>(&self, input: &dyn Array, row_offset: u64) -> Result<ArrayRef>
    where
        T: ArrowPrimitiveType,
        T::Native: ToF64,
    {
        let values = input.as_primitive::<T>();
        let mut rng = ChaCha20Rng::from_seed(self.stream_seed);
        rng.set_word_pos(u128::from(row_offset) * WORDS_PER_ROW);
        let integer = input.data_type().is_integer();
        // Every row draws, null or not, so each row's noise sits at a fixed stream position.
        let noisy: Vec<T::Native> = values
            .values()
            .iter()
            .map(|v| {
                let mut noisy = v.to_f64() + self.sample(&mut rng);
                if integer {
                    noisy = noisy.round();
                }
                if let Some((low, high)) = self.clip {
                    noisy = noisy.clamp(low, high);
                }
                T::Native::saturating_from_f64(noisy)
            })
            .collect();
        let out = PrimitiveArray::<T>::new(noisy.into(), values.nulls().cloned())
            .with_data_type(input.data_type().clone());
        Ok(Arc::new(out))
    }
}

impl ColumnOperator for Noise {
    fn name(&self) -> &'static str {
        "noise"
    }
    fn apply(&self, input: &ArrayRef, context: &ChunkContext<'_>) -> Result<ArrayRef> {
        let array = input.as_ref();
        let offset = context.row_offset;
        match array.data_type() {
            DataType::Int8 => self.perturb::<Int8Type>(array, offset),
            DataType::Int16 => self.perturb::<Int16Type>(array, offset),
            DataType::Int32 => self.perturb::<Int32Type>(array, offset),
            DataType::Int64 => self.perturb::<Int64Type>(array, offset),
            DataType::UInt8 => self.perturb::<UInt8Type>(array, offset),
            DataType::UInt16 => self.perturb::<UInt16Type>(array, offset),
            DataType::UInt32 => self.perturb::<UInt32Type>(array, offset),
            DataType::UInt64 => self.perturb::<UInt64Type>(array, offset),
            DataType::Float32 => self.perturb::<Float32Type>(array, offset),
            DataType::Float64 => self.perturb::<Float64Type>(array, offset),
            other => Err(Error::invalid_data(
                None,
                format!("cannot add noise to {other}"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Float64Array, Int32Array, RecordBatch};

    fn run(noise: &Noise, input: ArrayRef, row_offset: u64) -> ArrayRef {
        let batch = RecordBatch::new_empty(Arc::new(arrow_schema::Schema::empty()));
        let context = ChunkContext {
            row_offset,
            batch: &batch,
        };
        noise.apply(&input, &context).unwrap()
    }

    #[test]
    fn seeded_noise_is_reproducible_and_chunking_independent() {
        let noise = Noise::new(Distribution::Laplace, 2.0, None, Some(7), "salary").unwrap();
        let values: Vec<f64> = (0..1000).map(f64::from).collect();
        let whole = run(&noise, Arc::new(Float64Array::from(values.clone())), 0);
        let head = run(
            &noise,
            Arc::new(Float64Array::from(values[..400].to_vec())),
            0,
        );
        let tail = run(
            &noise,
            Arc::new(Float64Array::from(values[400..].to_vec())),
            400,
        );
        let whole = whole.as_primitive::<Float64Type>();
        let joined: Vec<f64> = head
            .as_primitive::<Float64Type>()
            .values()
            .iter()
            .chain(tail.as_primitive::<Float64Type>().values().iter())
            .copied()
            .collect();
        assert_eq!(whole.values().as_ref(), joined.as_slice());
        assert!(whole.values().iter().zip(&values).any(|(a, b)| a != b));
    }

    #[test]
    fn empirical_scale_matches_the_distribution() {
        let n = 200_000;
        for (distribution, scale, expected_std) in [
            (Distribution::Laplace, 3.0, 3.0 * std::f64::consts::SQRT_2),
            (Distribution::Gaussian, 3.0, 3.0),
        ] {
            let noise = Noise::new(distribution, scale, None, Some(1), "x").unwrap();
            let out = run(&noise, Arc::new(Float64Array::from(vec![0.0; n])), 0);
            let out = out.as_primitive::<Float64Type>();
            let mean = out.values().iter().sum::<f64>() / n as f64;
            let var = out.values().iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
            assert!(mean.abs() < 0.05, "{distribution:?} mean {mean}");
            assert!(
                (var.sqrt() - expected_std).abs() / expected_std < 0.02,
                "{distribution:?} std {} vs {expected_std}",
                var.sqrt()
            );
        }
    }

    #[test]
    fn integers_round_clip_and_keep_nulls() {
        let noise = Noise::new(
            Distribution::Gaussian,
            5.0,
            Some((0.0, 120.0)),
            Some(3),
            "age",
        )
        .unwrap();
        let out = run(
            &noise,
            Arc::new(Int32Array::from(vec![Some(0), None, Some(120)])),
            0,
        );
        let out = out.as_primitive::<Int32Type>();
        assert!(out.is_null(1));
        assert!((0..=120).contains(&out.value(0)) && (0..=120).contains(&out.value(2)));
        assert!(Noise::new(Distribution::Laplace, 0.0, None, None, "x").is_err());
    }
}
