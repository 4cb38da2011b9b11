//! Models embedded in the binary, trained by `srkit train` on the "291" set
//! (T91 + BSD200). Each has a model card in `models/*.md` with the exact
//! command, data, training time and benchmark table.

use super::Model;
use crate::error::{Error, Result};

/// A model shipped inside the binary.
#[derive(Debug, Clone, Copy)]
pub struct BuiltinModel {
    /// The name users pass to `--model` (`srcnn-x3`).
    pub name: &'static str,
    /// The upscaling factors it serves (several for a multi-scale VDSR).
    pub scales: &'static [usize],
    bytes: &'static [u8],
}

impl BuiltinModel {
    /// Whether it upscales by `scale`.
    pub fn supports(&self, scale: usize) -> bool {
        self.scales.contains(&scale)
    }

    /// Parses the embedded weights.
    pub fn load(&self) -> Result<Model> {
        Model::from_bytes(self.bytes, self.name)
    }
}

/// Every built-in model; for each scale, the first one that serves it is
/// the default (and the best on Set5, which a test checks).
pub const BUILTIN_MODELS: &[BuiltinModel] = &[
    BuiltinModel {
        name: "edsr-x2",
        scales: &[2],
        bytes: include_bytes!("../../models/edsr_x2.safetensors"),
    },
    BuiltinModel {
        name: "rdn-x3",
        scales: &[3],
        bytes: include_bytes!("../../models/rdn_x3.safetensors"),
    },
    BuiltinModel {
        name: "rcan-x3",
        scales: &[3],
        bytes: include_bytes!("../../models/rcan_x3.safetensors"),
    },
    BuiltinModel {
        name: "edsr-x4",
        scales: &[4],
        bytes: include_bytes!("../../models/edsr_x4.safetensors"),
    },
    BuiltinModel {
        name: "vdsr",
        scales: &[2, 3, 4],
        bytes: include_bytes!("../../models/vdsr.safetensors"),
    },
    BuiltinModel {
        name: "srcnn-x2",
        scales: &[2],
        bytes: include_bytes!("../../models/srcnn_x2.safetensors"),
    },
    BuiltinModel {
        name: "srcnn-x3",
        scales: &[3],
        bytes: include_bytes!("../../models/srcnn_x3.safetensors"),
    },
    BuiltinModel {
        name: "srcnn-x4",
        scales: &[4],
        bytes: include_bytes!("../../models/srcnn_x4.safetensors"),
    },
];

/// The built-in model called `name`.
pub fn builtin(name: &str) -> Result<&'static BuiltinModel> {
    BUILTIN_MODELS
        .iter()
        .find(|m| m.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| {
            let names: Vec<_> = BUILTIN_MODELS.iter().map(|m| m.name).collect();
            Error::Model(format!(
                "no built-in model {name:?} (built-in: {})",
                names.join(", ")
            ))
        })
}

/// The best built-in model for `scale`, if any.
pub fn default_for_scale(scale: usize) -> Option<&'static BuiltinModel> {
    BUILTIN_MODELS.iter().find(|m| m.supports(scale))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_model_loads_and_matches_its_scale() {
        for b in BUILTIN_MODELS {
            let m = b.load().unwrap();
            assert_eq!(m.meta.scales, b.scales, "{}", b.name);
            assert!(m.meta.training.steps > 0, "{} is untrained", b.name);
        }
        // The default for a scale is its best model on Set5 (scores
        // recorded by `srkit eval --record`, see scripts/model_card.py).
        let set5 = |b: &BuiltinModel, scale: usize| {
            b.load()
                .unwrap()
                .meta
                .benchmarks
                .iter()
                .find(|s| s.dataset == "Set5" && s.scale == scale)
                .map(|s| s.psnr)
                .unwrap_or_else(|| panic!("{} has no Set5 x{scale} score", b.name))
        };
        for scale in [2, 3, 4] {
            let best = default_for_scale(scale).unwrap();
            for b in BUILTIN_MODELS.iter().filter(|b| b.supports(scale)) {
                assert!(
                    set5(best, scale) >= set5(b, scale),
                    "{} beats the default {}",
                    b.name,
                    best.name
                );
            }
        }
        assert!(builtin("SRCNN-X3").is_ok());
        assert!(builtin("vdsr-x3").is_err());
        assert_eq!(default_for_scale(4).map(|m| m.name), Some("edsr-x4"));
        assert_eq!(default_for_scale(3).map(|m| m.name), Some("rdn-x3"));
        assert!(default_for_scale(5).is_none());
    }
}
