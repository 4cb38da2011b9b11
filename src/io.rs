//! Decoding and encoding image files, and atomic writes.
//!
//! # Reading
//!
//! [`read_image`] (a file) and [`decode_image`] (bytes already in memory)
//! decode PNG, JPEG, BMP, TIFF and WebP. The format is guessed from the
//! content, never from the extension. Every layout the decoders produce maps
//! onto an [`Image`]:
//!
//! | decoded as | channels | [`BitDepth`] |
//! |---|---|---|
//! | gray, gray + alpha, RGB, RGBA, 8-bit | 1, 2, 3, 4 | `U8` (`v / 255`) |
//! | the same, 16-bit | 1, 2, 3, 4 | `U16` (`v / 65535`) |
//! | RGB / RGBA `f32` (e.g. float TIFF) | 3, 4 | `F32` (as stored) |
//!
//! Palette images are expanded to RGB(A); a transparency chunk becomes an
//! alpha plane. EXIF orientation is **not** applied and ICC profiles are
//! ignored, as MATLAB's `imread` and PIL do, so benchmark images are seen
//! exactly as published.
//!
//! The image's width and height are read from the header and checked against
//! [`ReadOptions::max_pixels`] *before* any pixel is decoded, so a tiny file
//! claiming a huge size fails fast with [`Error::TooLarge`].
//!
//! # Writing
//!
//! [`write_image`] encodes PNG (8- or 16-bit; gray, gray + alpha, RGB, RGBA)
//! or JPEG (8-bit gray or RGB), the format chosen by the extension
//! ([`Format::from_path`]). Samples are quantised with [`BitDepth::quantize`]
//! (round half away from zero, clamp to `[0, 1]`).
//!
//! All writes go through [`write_atomic`]: the bytes go to a temporary file
//! in the destination's folder, which is renamed over the destination only
//! once everything has been written and synced. A failure at any point
//! leaves neither a partial file nor a temporary one, and an existing
//! destination untouched.

use std::fs;
use std::io::{self, BufWriter, Cursor, Write};
use std::path::{Path, PathBuf};

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::{DynamicImage, ImageBuffer, ImageError, ImageFormat, ImageReader, Limits};

use crate::error::{Error, Result};
use crate::image::{check_pixel_limit, BitDepth, Image, DEFAULT_MAX_PIXELS};

/// Options for [`read_image`] and [`decode_image`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadOptions {
    /// Largest accepted `width * height`; larger images fail with
    /// [`Error::TooLarge`] before their pixels are decoded.
    pub max_pixels: u64,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            max_pixels: DEFAULT_MAX_PIXELS,
        }
    }
}

/// Reads and decodes the image file at `path` (PNG, JPEG, BMP, TIFF or WebP,
/// recognised by content).
///
/// # Errors
/// - [`Error::Io`] if the path does not exist, cannot be read or is a
///   directory;
/// - [`Error::Decode`] if the file is empty, truncated, corrupt or not an
///   image;
/// - [`Error::Unsupported`] if it is an image format srkit does not read;
/// - [`Error::TooLarge`] if it has more than `opts.max_pixels` pixels.
pub fn read_image(path: &Path, opts: &ReadOptions) -> Result<Image> {
    let meta = fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        return Err(Error::io(
            path,
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "is a directory, expected an image file",
            ),
        ));
    }
    let bytes = fs::read(path).map_err(|e| Error::io(path, e))?;
    decode_image(&bytes, path, opts)
}

/// Decodes an image held in memory; `name` is used only in error messages.
///
/// Same formats, layouts and errors as [`read_image`] (except [`Error::Io`]).
pub fn decode_image(bytes: &[u8], name: &Path, opts: &ReadOptions) -> Result<Image> {
    let format = guess_format(bytes, name)?;
    let limits = decoder_limits(opts.max_pixels);

    // First pass: the header only, so the pixel limit is enforced before the
    // decoder allocates anything proportional to the claimed size.
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(limits.clone());
    let (w, h) = reader
        .into_dimensions()
        .map_err(|e| decode_error(name, e))?;
    check_pixel_limit("input", w as usize, h as usize, opts.max_pixels)?;

    // zune-jpeg pads a truncated scan with grey instead of failing; PIL and
    // libjpeg-based readers reject such files, and so do we.
    if format == ImageFormat::Jpeg && jpeg_is_truncated(bytes) {
        return Err(Error::Decode {
            path: name.to_path_buf(),
            reason: "truncated JPEG: the data ends before the end-of-image marker".into(),
        });
    }

    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(limits);
    let decoded = reader.decode().map_err(|e| decode_error(name, e))?;
    from_dynamic(decoded)
}

/// The formats [`write_image`] can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Format {
    /// PNG: lossless, 8- or 16-bit, with or without alpha.
    Png,
    /// Baseline JPEG: lossy, 8-bit, gray or RGB, no alpha.
    Jpeg,
}

impl Format {
    /// The format named by `path`'s extension: `png`, or `jpg` / `jpeg`
    /// (case-insensitive).
    ///
    /// # Errors
    /// [`Error::Unsupported`] for a missing or any other extension.
    pub fn from_path(path: &Path) -> Result<Format> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("png") => Ok(Format::Png),
            Some("jpg") | Some("jpeg") => Ok(Format::Jpeg),
            _ => Err(Error::Unsupported(format!(
                "{}: cannot tell the output format from the extension \
                 (expected .png, .jpg or .jpeg)",
                path.display()
            ))),
        }
    }

    /// Whether the format can store an alpha plane.
    pub fn supports_alpha(self) -> bool {
        match self {
            Format::Png => true,
            Format::Jpeg => false,
        }
    }

    /// The integer depth a file of this format is written at when `requested`
    /// is asked for: PNG keeps 8 and 16 bits and stores float as 16-bit; JPEG
    /// is always 8-bit.
    pub fn storage_depth(self, requested: BitDepth) -> BitDepth {
        match (self, requested) {
            (Format::Png, BitDepth::U8) => BitDepth::U8,
            (Format::Png, _) => BitDepth::U16,
            (Format::Jpeg, _) => BitDepth::U8,
        }
    }
}

/// Options for [`write_image`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOptions {
    /// JPEG quality, 1 (worst) to 100 (best); ignored for PNG. Default 95.
    pub jpeg_quality: u8,
    /// Bit depth to write; `None` uses the image's own
    /// ([`Image::depth`]). Float is written as 16-bit PNG or 8-bit JPEG, and
    /// JPEG is always 8-bit (see [`Format::storage_depth`]).
    pub depth: Option<BitDepth>,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            jpeg_quality: 95,
            depth: None,
        }
    }
}

/// Encodes `img` to `path`, atomically, in the format named by the extension
/// (see [`Format::from_path`]).
///
/// Samples are quantised to the output depth by round half away from zero
/// and clamped to `[0, 1]` (NaN becomes 0). JPEG drops the alpha plane (it is
/// not composited) and writes 8-bit.
///
/// # Errors
/// - [`Error::Unsupported`] for an extension other than png / jpg / jpeg;
/// - [`Error::InvalidParameter`] for a JPEG quality outside `1..=100`;
/// - [`Error::Encode`] if the encoder rejects the image (e.g. a JPEG wider
///   than 65535 pixels);
/// - [`Error::Io`] if `path` is a directory, its folder does not exist, or
///   writing fails (see [`write_atomic`]).
///
/// On any error nothing at `path` is created or changed.
pub fn write_image(img: &Image, path: &Path, opts: &WriteOptions) -> Result<()> {
    // Destination first: a bad path is reported before the image is encoded.
    check_destination(path)?;
    let format = Format::from_path(path)?;
    if format == Format::Jpeg && !(1..=100).contains(&opts.jpeg_quality) {
        return Err(Error::invalid(
            "jpeg quality",
            format!("{} (expected 1 to 100)", opts.jpeg_quality),
        ));
    }
    let depth = format.storage_depth(opts.depth.unwrap_or(img.depth()));
    let dynamic = to_dynamic(img, depth, format.supports_alpha())
        .map_err(|reason| encode_error(path, reason))?;

    // Encoder errors (as opposed to I/O errors) are stashed here so they are
    // reported as `Error::Encode` rather than as a failed write.
    let mut encode_failure: Option<ImageError> = None;
    let quality = opts.jpeg_quality;
    let written = write_atomic(path, |w| {
        let result = match format {
            Format::Png => dynamic.write_with_encoder(PngEncoder::new(w)),
            Format::Jpeg => dynamic.write_with_encoder(JpegEncoder::new_with_quality(w, quality)),
        };
        match result {
            Ok(()) => Ok(()),
            Err(ImageError::IoError(e)) => Err(e),
            Err(e) => {
                encode_failure = Some(e);
                Err(io::Error::other("encoding failed"))
            }
        }
    });
    match (written, encode_failure) {
        (Err(_), Some(e)) => Err(encode_error(path, one_line(&e.to_string()))),
        (result, _) => result,
    }
}

/// Writes a file atomically: `write` fills a temporary file created in
/// `path`'s folder, which is flushed, synced and renamed over `path` only if
/// `write` succeeds.
///
/// If `write` fails (or panics), or any later step fails, the temporary file
/// is removed and `path` is left as it was. The new file gets the
/// permissions a plainly created file would (`0o666` less the umask on
/// Unix), not the temporary file's private ones. A symbolic link at `path`
/// is replaced, not followed.
///
/// # Errors
/// [`Error::Io`] naming `path` if `path` is an existing directory, its
/// folder does not exist or is not a directory, or any step fails; the
/// source is the operating-system error, or the one `write` returned.
/// [`Error::InvalidParameter`] if `path` is empty.
///
/// # Example
/// ```
/// use std::io::Write;
/// # let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("summary.json");
/// srkit::io::write_atomic(&path, |w| w.write_all(b"{\"psnr\": 32.1}"))?;
/// assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"psnr\": 32.1}");
/// # Ok::<(), srkit::Error>(())
/// ```
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<()> {
    let folder = check_destination(path)?;
    let prefix = temp_prefix(path);
    let mut tmp = temp_builder(&prefix).tempfile_in(folder).map_err(|e| {
        let reason = format!(
            "cannot create a temporary file in {}: {e}",
            folder.display()
        );
        Error::io(path, io::Error::new(e.kind(), reason))
    })?;
    let _pending = PendingTemp::register(tmp.path());
    {
        let mut out = BufWriter::new(tmp.as_file_mut());
        write(&mut out)
            .and_then(|()| out.flush())
            .map_err(|e| Error::io(path, e))?;
    }
    tmp.as_file().sync_all().map_err(|e| Error::io(path, e))?;
    // On failure the returned `PersistError` owns the temporary file and
    // deletes it when dropped.
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

/// Temporary files [`write_atomic`] is writing right now, for
/// [`remove_pending_temp_files`].
static PENDING_TEMP_FILES: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Lists a temporary file in [`PENDING_TEMP_FILES`] while it lives.
struct PendingTemp(PathBuf);

impl PendingTemp {
    fn register(path: &Path) -> PendingTemp {
        if let Ok(mut list) = PENDING_TEMP_FILES.lock() {
            list.push(path.to_path_buf());
        }
        PendingTemp(path.to_path_buf())
    }
}

impl Drop for PendingTemp {
    fn drop(&mut self) {
        if let Ok(mut list) = PENDING_TEMP_FILES.lock() {
            list.retain(|p| p != &self.0);
        }
    }
}

/// Deletes the temporary files of the [`write_atomic`] calls in progress,
/// for a process about to exit on a signal: a temporary file is normally
/// deleted when its writer fails or renamed into place when it succeeds,
/// but a signal ends the process without either. The finished files these
/// writes would have replaced stay untouched.
pub fn remove_pending_temp_files() {
    // A writer that panicked while holding the lock left a valid list.
    let list = PENDING_TEMP_FILES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for path in list.iter() {
        let _ = fs::remove_file(path);
    }
}

/// Checks that `path` can be the destination of a new file: not empty, not
/// an existing directory, and in an existing folder, which is returned.
fn check_destination(path: &Path) -> Result<&Path> {
    if path.as_os_str().is_empty() {
        return Err(Error::invalid("output path", "is empty"));
    }
    if path.is_dir() {
        return Err(Error::io(
            path,
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "is a directory, expected a file path",
            ),
        ));
    }
    let folder = parent_folder(path);
    match fs::metadata(folder) {
        Ok(m) if m.is_dir() => Ok(folder),
        Ok(_) => Err(Error::io(
            path,
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a directory", folder.display()),
            ),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::io(
            path,
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("output folder {} does not exist", folder.display()),
            ),
        )),
        Err(e) => Err(Error::io(folder, e)),
    }
}

/// The folder `path` is in (`.` for a bare file name).
fn parent_folder(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// The start of the names of [`write_atomic`]'s temporary files for `path`:
/// `.NAME.srkit-`, hidden and tied to the file they will become, so that
/// [`remove_stale_temp_files`] can find them again after a SIGKILL.
fn temp_prefix(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(".{name}.srkit-")
}

/// The random part of a temporary file's name (tempfile's default length).
const TEMP_RANDOM_CHARS: usize = 6;
/// The end of a temporary file's name.
const TEMP_SUFFIX: &str = ".tmp";

/// A temporary-file builder for names `prefix` + random + `.tmp`, with the
/// mode of an ordinary new file.
fn temp_builder(prefix: &str) -> tempfile::Builder<'_, 'static> {
    let mut builder = tempfile::Builder::new();
    builder
        .prefix(prefix)
        .rand_bytes(TEMP_RANDOM_CHARS)
        .suffix(TEMP_SUFFIX);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(fs::Permissions::from_mode(0o666));
    }
    builder
}

/// Deletes the temporary files that [`write_atomic`] calls for `path` left
/// behind when their process was killed (SIGKILL, power loss) between
/// creating and renaming them; returns how many it removed.
///
/// Only names of the exact form `.NAME.srkit-XXXXXX.tmp` for `path`'s NAME
/// are touched. Call it only when no other process can be writing `path`
/// right now — a long job that owns its output files, at start-up — since a
/// write in progress elsewhere would lose its temporary file.
///
/// # Errors
/// [`Error::Io`] if the folder cannot be listed or a file cannot be removed.
pub fn remove_stale_temp_files(path: &Path) -> Result<usize> {
    let folder = parent_folder(path);
    let prefix = temp_prefix(path);
    let entries = match fs::read_dir(folder) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::io(folder, e)),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(folder, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let is_ours = name
            .strip_prefix(prefix.as_str())
            .and_then(|rest| rest.strip_suffix(TEMP_SUFFIX))
            .is_some_and(|random| {
                random.len() == TEMP_RANDOM_CHARS
                    && random.bytes().all(|b| b.is_ascii_alphanumeric())
            });
        if is_ours && entry.file_type().is_ok_and(|t| t.is_file()) {
            let stale = entry.path();
            fs::remove_file(&stale).map_err(|e| Error::io(&stale, e))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Format by magic bytes, with srkit's error for empty, unknown and
/// unsupported inputs.
fn guess_format(bytes: &[u8], name: &Path) -> Result<ImageFormat> {
    if bytes.is_empty() {
        return Err(Error::Decode {
            path: name.to_path_buf(),
            reason: "the file is empty".into(),
        });
    }
    let format = image::guess_format(bytes).map_err(|_| Error::Decode {
        path: name.to_path_buf(),
        reason: "not a recognised image format (expected PNG, JPEG, BMP, TIFF or WebP)".into(),
    })?;
    if !format.reading_enabled() {
        return Err(Error::Unsupported(format!(
            "{}: {format:?} images cannot be read (supported: PNG, JPEG, BMP, TIFF, WebP)",
            name.display()
        )));
    }
    Ok(format)
}

/// Whether a JPEG stream ends before its end-of-image (EOI) marker.
///
/// Walks the marker segments from SOI, skipping each segment by its length
/// and each entropy-coded scan up to the next real marker (`FF 00` stuffing
/// and `RSTn` markers are part of the scan). Only running out of data counts
/// as truncation; a malformed structure is left for the decoder to report.
/// Data after EOI is ignored.
fn jpeg_is_truncated(b: &[u8]) -> bool {
    const SOS: u8 = 0xDA;
    const EOI: u8 = 0xD9;
    if !b.starts_with(&[0xFF, 0xD8]) {
        return false;
    }
    let mut i = 2;
    loop {
        // A marker: one or more 0xFF (fill bytes), then its code.
        match b.get(i) {
            None => return true,
            Some(0xFF) => {}
            Some(_) => return false,
        }
        while b.get(i) == Some(&0xFF) {
            i += 1;
        }
        let Some(&marker) = b.get(i) else {
            return true;
        };
        i += 1;
        match marker {
            EOI => return false,
            // Standalone markers: TEM, RST0..7, SOI.
            0x01 | 0xD0..=0xD8 => continue,
            _ => {}
        }
        let Some(len) = b.get(i..i + 2) else {
            return true;
        };
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        if len < 2 {
            return false;
        }
        i += len;
        if i > b.len() {
            return true;
        }
        if marker == SOS {
            // Entropy-coded data runs to the next 0xFF not followed by 0x00,
            // 0xFF or an RST marker.
            loop {
                let Some(off) = b[i..].iter().position(|&v| v == 0xFF) else {
                    return true;
                };
                i += off;
                match b.get(i + 1) {
                    None => return true,
                    Some(0x00) | Some(0xD0..=0xD7) => i += 2,
                    Some(0xFF) => i += 1,
                    Some(_) => break,
                }
            }
        }
    }
}

/// Decoder limits: generous enough for any image within `max_pixels`
/// (RGBA `f32` is 16 bytes a pixel), never below the crate's default.
fn decoder_limits(max_pixels: u64) -> Limits {
    let mut limits = Limits::default();
    let floor = limits.max_alloc.unwrap_or(512 * 1024 * 1024);
    limits.max_alloc = Some(max_pixels.saturating_mul(16).max(floor));
    limits
}

/// Maps the decoder's error onto srkit's, keeping its reason.
fn decode_error(name: &Path, e: ImageError) -> Error {
    match e {
        ImageError::Unsupported(u) => {
            Error::Unsupported(format!("{}: {}", name.display(), one_line(&u.to_string())))
        }
        ImageError::IoError(io) if io.kind() == io::ErrorKind::UnexpectedEof => Error::Decode {
            path: name.to_path_buf(),
            reason: "truncated: the data ends before the image does".into(),
        },
        ImageError::Limits(l) => Error::Decode {
            path: name.to_path_buf(),
            reason: format!(
                "decoder memory limit exceeded: {}",
                one_line(&l.to_string())
            ),
        },
        other => Error::Decode {
            path: name.to_path_buf(),
            reason: one_line(&other.to_string()),
        },
    }
}

fn encode_error(path: &Path, reason: String) -> Error {
    Error::Encode {
        path: PathBuf::from(path),
        reason,
    }
}

/// Collapses a multi-line message into one line.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Interleaved samples (`channels` per pixel) to planar `f32`.
fn deinterleave<T: Copy>(samples: &[T], channels: usize, to_f32: impl Fn(T) -> f32) -> Vec<f32> {
    let n = samples.len() / channels;
    let mut out = vec![0.0f32; samples.len()];
    for (i, px) in samples.chunks_exact(channels).enumerate() {
        for (c, &v) in px.iter().enumerate() {
            out[c * n + i] = to_f32(v);
        }
    }
    out
}

/// The decoder's image as an [`Image`] (see the module docs for the mapping).
fn from_dynamic(img: DynamicImage) -> Result<Image> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let u8s = |v: u8| f32::from(v) / 255.0;
    let u16s = |v: u16| f32::from(v) / 65535.0;
    let f32s = |v: f32| v;
    let (channels, depth, data) = match img {
        DynamicImage::ImageLuma8(b) => (1, BitDepth::U8, deinterleave(b.as_raw(), 1, u8s)),
        DynamicImage::ImageLumaA8(b) => (2, BitDepth::U8, deinterleave(b.as_raw(), 2, u8s)),
        DynamicImage::ImageRgb8(b) => (3, BitDepth::U8, deinterleave(b.as_raw(), 3, u8s)),
        DynamicImage::ImageRgba8(b) => (4, BitDepth::U8, deinterleave(b.as_raw(), 4, u8s)),
        DynamicImage::ImageLuma16(b) => (1, BitDepth::U16, deinterleave(b.as_raw(), 1, u16s)),
        DynamicImage::ImageLumaA16(b) => (2, BitDepth::U16, deinterleave(b.as_raw(), 2, u16s)),
        DynamicImage::ImageRgb16(b) => (3, BitDepth::U16, deinterleave(b.as_raw(), 3, u16s)),
        DynamicImage::ImageRgba16(b) => (4, BitDepth::U16, deinterleave(b.as_raw(), 4, u16s)),
        DynamicImage::ImageRgb32F(b) => (3, BitDepth::F32, deinterleave(b.as_raw(), 3, f32s)),
        DynamicImage::ImageRgba32F(b) => (4, BitDepth::F32, deinterleave(b.as_raw(), 4, f32s)),
        // Layouts added by later versions of the crate: keep the colour
        // model, go through float, and record the closest depth.
        other => {
            let color = other.color();
            let depth = match color.bytes_per_pixel() / color.channel_count().max(1) {
                1 => BitDepth::U8,
                2 => BitDepth::U16,
                _ => BitDepth::F32,
            };
            match (color.has_color(), color.has_alpha()) {
                (true, true) => (4, depth, deinterleave(other.to_rgba32f().as_raw(), 4, f32s)),
                (true, false) => (3, depth, deinterleave(other.to_rgb32f().as_raw(), 3, f32s)),
                (false, true) => {
                    let rgba = other.to_rgba32f();
                    let la: Vec<f32> = rgba
                        .as_raw()
                        .chunks_exact(4)
                        .flat_map(|p| [p[0], p[3]])
                        .collect();
                    (2, depth, deinterleave(&la, 2, f32s))
                }
                (false, false) => {
                    let rgb = other.to_rgb32f();
                    (
                        1,
                        depth,
                        deinterleave(rgb.as_raw(), 3, f32s)[..w * h].to_vec(),
                    )
                }
            }
        }
    };
    Image::from_planar(w, h, channels, depth, data)
}

/// Quantises planes `0..channels` of `img` to integers of `depth` and
/// interleaves them.
fn interleave<T: Copy + Default>(
    img: &Image,
    channels: usize,
    depth: BitDepth,
    to_int: impl Fn(f64) -> T,
) -> Vec<T> {
    let n = img.pixel_count();
    let max = depth.max_value().unwrap_or(1.0);
    let mut out = vec![T::default(); n * channels];
    for c in 0..channels {
        for (i, &v) in img.plane(c).iter().enumerate() {
            out[i * channels + c] = to_int(depth.quantize(f64::from(v)) * max);
        }
    }
    out
}

/// `img` as an integer image of `depth` (`U8` or `U16`), alpha dropped unless
/// `keep_alpha`. Errors are encoder reasons.
fn to_dynamic(
    img: &Image,
    depth: BitDepth,
    keep_alpha: bool,
) -> std::result::Result<DynamicImage, String> {
    let too_big = || format!("{} is too large to encode", img.shape_string());
    let w = u32::try_from(img.width()).map_err(|_| too_big())?;
    let h = u32::try_from(img.height()).map_err(|_| too_big())?;
    let channels = if keep_alpha {
        img.channels()
    } else {
        img.color_channels()
    };
    // `quantize` has already rounded and clamped; `as` then only drops the
    // (integral) fraction, and maps NaN to 0.
    let dynamic = if depth == BitDepth::U8 {
        let s = interleave(img, channels, depth, |v| v.round() as u8);
        match channels {
            1 => ImageBuffer::from_raw(w, h, s).map(DynamicImage::ImageLuma8),
            2 => ImageBuffer::from_raw(w, h, s).map(DynamicImage::ImageLumaA8),
            3 => ImageBuffer::from_raw(w, h, s).map(DynamicImage::ImageRgb8),
            _ => ImageBuffer::from_raw(w, h, s).map(DynamicImage::ImageRgba8),
        }
    } else {
        let s = interleave(img, channels, depth, |v| v.round() as u16);
        match channels {
            1 => ImageBuffer::from_raw(w, h, s).map(DynamicImage::ImageLuma16),
            2 => ImageBuffer::from_raw(w, h, s).map(DynamicImage::ImageLumaA16),
            3 => ImageBuffer::from_raw(w, h, s).map(DynamicImage::ImageRgb16),
            _ => ImageBuffer::from_raw(w, h, s).map(DynamicImage::ImageRgba16),
        }
    };
    dynamic.ok_or_else(too_big)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_from_extension_is_case_insensitive() {
        assert_eq!(
            Format::from_path(Path::new("a/b.PNG")).unwrap(),
            Format::Png
        );
        assert_eq!(Format::from_path(Path::new("b.jpg")).unwrap(), Format::Jpeg);
        assert_eq!(
            Format::from_path(Path::new("b.JpEg")).unwrap(),
            Format::Jpeg
        );
        for bad in ["b.bmp", "b", "b.png.txt", ".png"] {
            assert!(
                matches!(
                    Format::from_path(Path::new(bad)),
                    Err(Error::Unsupported(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn storage_depth_rules() {
        assert_eq!(Format::Png.storage_depth(BitDepth::U8), BitDepth::U8);
        assert_eq!(Format::Png.storage_depth(BitDepth::U16), BitDepth::U16);
        assert_eq!(Format::Png.storage_depth(BitDepth::F32), BitDepth::U16);
        for d in [BitDepth::U8, BitDepth::U16, BitDepth::F32] {
            assert_eq!(Format::Jpeg.storage_depth(d), BitDepth::U8);
        }
    }

    #[test]
    fn interleave_quantises_half_away_and_clamps() {
        let data = vec![0.5 / 255.0, 1.5 / 255.0, -0.1, 1.7, f32::NAN, 0.2];
        let img = Image::from_planar(6, 1, 1, BitDepth::F32, data).unwrap();
        let s = interleave(&img, 1, BitDepth::U8, |v| v.round() as u8);
        assert_eq!(s, vec![1, 2, 0, 255, 0, 51]);
    }

    #[test]
    fn planar_interleaved_round_trip() {
        let data: Vec<f32> = (0..2 * 3 * 4).map(|v| v as f32 / 255.0).collect();
        let img = Image::from_planar(3, 2, 4, BitDepth::U8, data).unwrap();
        let dynamic = to_dynamic(&img, BitDepth::U8, true).unwrap();
        assert!(matches!(dynamic, DynamicImage::ImageRgba8(_)));
        // pixel 0 holds sample 0 of each plane
        assert_eq!(&dynamic.as_bytes()[..4], &[0, 6, 12, 18]);
        assert_eq!(from_dynamic(dynamic).unwrap(), img);

        let no_alpha = to_dynamic(&img, BitDepth::U16, false).unwrap();
        assert!(matches!(no_alpha, DynamicImage::ImageRgb16(_)));
    }

    #[test]
    fn empty_and_unknown_bytes_are_decode_errors() {
        let opts = ReadOptions::default();
        let name = Path::new("x.png");
        assert!(matches!(
            decode_image(&[], name, &opts),
            Err(Error::Decode { .. })
        ));
        assert!(matches!(
            decode_image(b"hello, world\n", name, &opts),
            Err(Error::Decode { .. })
        ));
    }

    #[test]
    fn jpeg_truncation_is_detected_by_marker_walk() {
        // SOI, APP0 (len 4), SOS (len 3) + scan with stuffing and RST, EOI.
        let full: &[u8] = &[
            0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0xFF, 0xD9, 0xFF, 0xDA, 0x00, 0x03, 0x01, 0x12,
            0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56, 0xFF, 0xFF, 0xD9,
        ];
        assert!(!jpeg_is_truncated(full));
        // The FF D9 inside APP0 is payload, not EOI: every cut is truncated.
        for cut in 2..full.len() {
            assert!(jpeg_is_truncated(&full[..cut]), "cut at {cut}");
        }
        let mut trailing = full.to_vec();
        trailing.extend_from_slice(b"trailer");
        assert!(!jpeg_is_truncated(&trailing));
        // Not a JPEG, or malformed: left to the decoder.
        assert!(!jpeg_is_truncated(b"\x89PNG"));
        assert!(!jpeg_is_truncated(&[0xFF, 0xD8, 0x12, 0x34]));
    }

    #[test]
    fn decoder_limits_never_below_default() {
        assert_eq!(decoder_limits(1).max_alloc, Some(512 * 1024 * 1024));
        assert_eq!(decoder_limits(1 << 30).max_alloc, Some(16 << 30));
        assert_eq!(decoder_limits(u64::MAX).max_alloc, Some(u64::MAX));
    }
}
