//! Image folders: png/jpeg files sorted by name, decoded, resized and normalised into NHWC float samples.

use std::path::{Path, PathBuf};

use image::imageops::{self, FilterType};
use image::{DynamicImage, GrayImage, ImageReader, Luma};
use ndarray::{ArrayD, IxDyn};
use rayon::prelude::*;

use super::error::{DatasetError, DatasetErrorKind};
use super::source::{InputLayout, InputSource};
use super::{list_images, DatasetSpec};

/// Decoded images feeding one NHWC input.
pub(crate) struct ImageSource {
    dataset: String,
    input: String,
    files: Vec<PathBuf>,
    available: usize,
    height: u32,
    width: u32,
    channels: usize,
    mean: Vec<f32>,
    std: Vec<f32>,
    /// Whether `resize` was given: without it an image of another size is an error, not silently resized.
    resize: bool,
    next: usize,
}

impl ImageSource {
    /// Lists the folder of `spec` and checks it against `layout` (`[1, height, width, 1 or 3]`).
    pub fn open(
        spec: &DatasetSpec,
        folder: &Path,
        layout: &InputLayout,
    ) -> Result<ImageSource, DatasetError> {
        let fail = |kind| {
            DatasetError::new(spec.name.clone(), kind)
                .with_input(layout.name.clone())
                .with_file(folder)
        };
        layout.check_feed("images", false).map_err(fail)?;
        let (height, width, channels) = match layout.shape.as_slice() {
            &[1, h, w, c] if h > 0 && w > 0 && (c == 1 || c == 3) => (h, w, c),
            _ => {
                return Err(fail(DatasetErrorKind::ImageInputShape {
                    shape: layout.shape.clone(),
                }))
            }
        };
        let (Ok(height), Ok(width)) = (u32::try_from(height), u32::try_from(width)) else {
            return Err(fail(DatasetErrorKind::ImageInputShape {
                shape: layout.shape.clone(),
            }));
        };
        if let Some(resize) = spec.resize {
            if resize != [height, width] {
                return Err(fail(DatasetErrorKind::ResizeMismatch {
                    resize,
                    expected: [height, width],
                }));
            }
        }
        let mean = per_channel(&spec.mean, channels, 0.0, "mean").map_err(fail)?;
        let std = per_channel(&spec.std, channels, 1.0, "std").map_err(fail)?;
        if let Some(bad) = std.iter().find(|s| **s == 0.0) {
            return Err(fail(DatasetErrorKind::Normalization(format!(
                "`std` holds {bad}; expected non-zero divisors"
            ))));
        }
        let files = list_images(folder).map_err(|e| fail(DatasetErrorKind::Io(e)))?;
        if files.is_empty() {
            return Err(fail(DatasetErrorKind::EmptyFolder));
        }
        let available = spec.samples.map_or(files.len(), |cap| cap.min(files.len()));
        Ok(ImageSource {
            dataset: spec.name.clone(),
            input: layout.name.clone(),
            files,
            available,
            height,
            width,
            channels,
            mean,
            std,
            resize: spec.resize.is_some(),
            next: 0,
        })
    }

    fn load(&self, index: usize, path: &Path) -> Result<ArrayD<f32>, DatasetError> {
        let fail = |kind| {
            DatasetError::new(self.dataset.clone(), kind)
                .with_input(self.input.clone())
                .with_sample(index)
                .with_file(path)
        };
        let image = ImageReader::open(path)
            .and_then(|reader| reader.with_guessed_format())
            .map_err(|e| fail(DatasetErrorKind::Io(e)))?
            .decode()
            .map_err(|e| fail(DatasetErrorKind::Image(e.to_string())))?;
        let size = [image.height(), image.width()];
        if !self.resize && size != [self.height, self.width] {
            return Err(fail(DatasetErrorKind::ImageSize {
                found: size,
                expected: [self.height, self.width],
            }));
        }
        // 16-bit and float images are reduced to 8 bits per channel, so pixel values are 0..=255 throughout.
        let pixels: Vec<u8> = if self.channels == 1 {
            let gray = grayscale(&image);
            if size == [self.height, self.width] {
                gray.into_raw()
            } else {
                imageops::resize(&gray, self.width, self.height, FilterType::Triangle).into_raw()
            }
        } else {
            let rgb = image.to_rgb8();
            if size == [self.height, self.width] {
                rgb.into_raw()
            } else {
                imageops::resize(&rgb, self.width, self.height, FilterType::Triangle).into_raw()
            }
        };
        let values: Vec<f32> = pixels
            .iter()
            .enumerate()
            .map(|(i, &p)| {
                let c = i % self.channels;
                (f32::from(p) - self.mean[c]) / self.std[c]
            })
            .collect();
        let shape = [1, self.height as usize, self.width as usize, self.channels];
        ArrayD::from_shape_vec(IxDyn(&shape), values).map_err(|_| {
            fail(DatasetErrorKind::ShapeMismatch {
                found: vec![pixels.len()],
                expected: shape.to_vec(),
            })
        })
    }
}

/// The image as 8-bit luma. Colour images use ITU-R 601 weights in PIL's fixed-point form
/// (`L = (19595 R + 38470 G + 7471 B + 2^15) >> 16`), the conversion Keras and `tf.image.rgb_to_grayscale` apply
/// to training data; the image crate's own `to_luma8` uses Rec. 709 weights, which would shift the inputs.
fn grayscale(image: &DynamicImage) -> GrayImage {
    if image.color().has_color() {
        let rgb = image.to_rgb8();
        GrayImage::from_fn(rgb.width(), rgb.height(), |x, y| {
            let [r, g, b] = rgb.get_pixel(x, y).0;
            let luma =
                (19595 * u32::from(r) + 38470 * u32::from(g) + 7471 * u32::from(b) + 0x8000) >> 16;
            Luma([u8::try_from(luma).unwrap_or(u8::MAX)])
        })
    } else {
        image.to_luma8()
    }
}

/// `values` spread over `channels`: empty means `default`, one value applies to every channel.
fn per_channel(
    values: &[f32],
    channels: usize,
    default: f32,
    key: &str,
) -> Result<Vec<f32>, DatasetErrorKind> {
    let spread = match values.len() {
        0 => vec![default; channels],
        1 => vec![values[0]; channels],
        n if n == channels => values.to_vec(),
        n => {
            return Err(DatasetErrorKind::Normalization(format!(
            "`{key}` has {n} values; the input has {channels} channels, expected 1 or {channels}"
        )))
        }
    };
    if let Some(bad) = spread.iter().find(|v| !v.is_finite()) {
        return Err(DatasetErrorKind::Normalization(format!(
            "`{key}` holds {bad}; expected finite numbers"
        )));
    }
    Ok(spread)
}

impl InputSource for ImageSource {
    fn dataset(&self) -> &str {
        &self.dataset
    }

    fn available(&self) -> Option<usize> {
        Some(self.available)
    }

    fn file_of(&self, index: usize) -> Option<PathBuf> {
        self.files.get(index).cloned()
    }

    fn read_next(&mut self, count: usize) -> Result<Vec<ArrayD<f32>>, DatasetError> {
        let end = self.available.min(self.next.saturating_add(count));
        let batch = self.files.get(self.next..end).unwrap_or_default();
        // Decoding dominates; images decode in parallel, results stay in file order (first error wins).
        let decoded: Vec<Result<ArrayD<f32>, DatasetError>> = batch
            .par_iter()
            .enumerate()
            .map(|(i, path)| self.load(self.next + i, path))
            .collect();
        let samples = decoded.into_iter().collect::<Result<Vec<_>, _>>()?;
        self.next = end;
        Ok(samples)
    }
}
