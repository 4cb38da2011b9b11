//! Per-ISA inner loops (`unsafe` lives only here), one file per client
//! module, each behind safe dispatchers with a scalar fallback and runtime
//! CPU detection.

pub(crate) mod resample;
pub(crate) mod ssim;
