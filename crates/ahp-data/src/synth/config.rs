//! What the synthetic data set holds: [`SynthConfig`] and its validation.

use super::shape::Shape;
use super::style::Style;
use crate::error::{DataError, Result};

/// Smallest image side [`generate`](super::generate) accepts.
pub const MIN_SIZE: u32 = 16;
/// Largest image side [`generate`](super::generate) accepts.
pub const MAX_SIZE: u32 = 2048;

/// What [`generate`](super::generate) writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthConfig {
    /// Base seed; every image's generator is derived from it.
    pub seed: u64,
    /// Number of classes: the first `classes` of [`Shape::ALL`].
    pub classes: usize,
    /// Domains to write, one directory each.
    pub domains: Vec<Style>,
    /// Images per class and domain.
    pub per_class: usize,
    /// Image side in pixels (square images).
    pub size: u32,
}

impl Default for SynthConfig {
    /// Seed 0, 6 classes, all four domains, 40 images per class, 64 px.
    fn default() -> Self {
        Self {
            seed: 0,
            classes: 6,
            domains: Style::ALL.to_vec(),
            per_class: 40,
            size: 64,
        }
    }
}

impl SynthConfig {
    /// Checks every field; errors name the field.
    pub fn validate(&self) -> Result<()> {
        self.shapes()?;
        self.validate_domains()?;
        if self.per_class == 0 {
            return Err(DataError::option("per_class", "must be at least 1"));
        }
        self.validate_size()
    }

    /// The classes written: the first `classes` shapes.
    pub fn shapes(&self) -> Result<&'static [Shape]> {
        if self.classes == 0 {
            return Err(DataError::option("classes", "must be at least 1"));
        }
        Shape::ALL.get(..self.classes).ok_or_else(|| {
            DataError::option(
                "classes",
                format!(
                    "{} requested but only {} are available ({})",
                    self.classes,
                    Shape::ALL.len(),
                    Shape::ALL.map(Shape::name).join(", ")
                ),
            )
        })
    }

    /// At least one domain, none twice.
    fn validate_domains(&self) -> Result<()> {
        if self.domains.is_empty() {
            return Err(DataError::option("domains", "no domains given"));
        }
        for (i, d) in self.domains.iter().enumerate() {
            if self.domains[..i].contains(d) {
                return Err(DataError::option(
                    "domains",
                    format!("domain '{d}' is listed twice"),
                ));
            }
        }
        Ok(())
    }

    /// The image side is within [`MIN_SIZE`]`..=`[`MAX_SIZE`].
    fn validate_size(&self) -> Result<()> {
        if self.size < MIN_SIZE {
            return Err(DataError::option(
                "size",
                format!("{} px is too small (minimum {MIN_SIZE})", self.size),
            ));
        }
        if self.size > MAX_SIZE {
            return Err(DataError::option(
                "size",
                format!("{} px is too large (maximum {MAX_SIZE})", self.size),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_errors_name_the_field() {
        let too_many = SynthConfig {
            classes: 11,
            ..SynthConfig::default()
        };
        let msg = too_many.validate().expect_err("11 classes").to_string();
        assert!(msg.contains("classes") && msg.contains("only 10"), "{msg}");
        let small = SynthConfig {
            size: 15,
            ..SynthConfig::default()
        };
        let msg = small.validate().expect_err("15 px").to_string();
        assert!(msg.contains("size") && msg.contains("15"), "{msg}");
        assert!(SynthConfig::default().validate().is_ok());
    }
}
