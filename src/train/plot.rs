//! The training curve as a PNG: training loss (log scale, top panel) and
//! validation PSNR (bottom panel) against step, on a light grid with
//! 10 vertical divisions. Exact values are in the CSV log beside it.

use std::path::Path;

use image::{Rgb, RgbImage};

use super::LogRow;
use crate::error::{Error, Result};

const WIDTH: u32 = 800;
const PANEL: u32 = 300;
const MARGIN: u32 = 20;

pub(super) fn write_curve(path: &Path, rows: &[LogRow]) -> Result<()> {
    let mut img = RgbImage::from_pixel(WIDTH, 2 * PANEL, Rgb([255, 255, 255]));
    let max_step = rows.iter().map(|r| r.step).max().unwrap_or(1).max(1) as f64;
    let loss: Vec<(f64, f64)> = rows
        .iter()
        .filter(|r| r.loss > 0.0)
        .map(|r| (r.step as f64 / max_step, r.loss.log10()))
        .collect();
    let psnr: Vec<(f64, f64)> = rows
        .iter()
        .filter(|r| r.val_psnr.is_finite())
        .map(|r| (r.step as f64 / max_step, r.val_psnr))
        .collect();
    draw_panel(&mut img, 0, &loss, Rgb([200, 40, 40]));
    draw_panel(&mut img, PANEL, &psnr, Rgb([30, 70, 200]));
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| Error::Encode {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    crate::io::write_atomic(path, |w| w.write_all(&png))
}

fn draw_panel(img: &mut RgbImage, top: u32, points: &[(f64, f64)], color: Rgb<u8>) {
    let (x0, x1) = (MARGIN as f64, (WIDTH - MARGIN) as f64);
    let (y0, y1) = ((top + MARGIN) as f64, (top + PANEL - MARGIN) as f64);
    let grid = Rgb([225, 225, 225]);
    for i in 0..=10 {
        let x = (x0 + (x1 - x0) * i as f64 / 10.0) as u32;
        let y = (y0 + (y1 - y0) * i as f64 / 10.0) as u32;
        for t in y0 as u32..=y1 as u32 {
            img.put_pixel(x, t, grid);
        }
        for t in x0 as u32..=x1 as u32 {
            img.put_pixel(t, y, grid);
        }
    }
    let lo = points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let hi = points.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    let span = if hi > lo { hi - lo } else { 1.0 };
    let to_px = |(u, v): (f64, f64)| (x0 + (x1 - x0) * u, y1 - (y1 - y0) * (v - lo) / span);
    for pair in points.windows(2) {
        let (a, b) = (to_px(pair[0]), to_px(pair[1]));
        let n = ((b.0 - a.0).abs().max((b.1 - a.1).abs()).ceil() as usize).max(1);
        for k in 0..=n {
            let t = k as f64 / n as f64;
            let (x, y) = (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t);
            for (dx, dy) in [(0, 0), (1, 0), (0, 1)] {
                let (px, py) = (x as u32 + dx, y as u32 + dy);
                if px < img.width() && py < img.height() {
                    img.put_pixel(px, py, color);
                }
            }
        }
    }
    for &p in points {
        let (x, y) = to_px(p);
        for dx in 0..3u32 {
            for dy in 0..3u32 {
                let (px, py) = (
                    (x as u32 + dx).saturating_sub(1),
                    (y as u32 + dy).saturating_sub(1),
                );
                if px < img.width() && py < img.height() {
                    img.put_pixel(px, py, color);
                }
            }
        }
    }
}
