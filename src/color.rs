//! RGB ↔ YCbCr (ITU-R BT.601, studio range) exactly as MATLAB's `rgb2ycbcr` /
//! `ycbcr2rgb` compute it. The only copy of these constants in srkit.
