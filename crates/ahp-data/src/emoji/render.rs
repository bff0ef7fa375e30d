//! Rasterizing an SVG with resvg (pure Rust): scaled to fit a square with a margin, centred, on
//! an opaque background.

use image::RgbImage;
use resvg::{tiny_skia, usvg};

/// How icons are rasterized.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RenderOptions {
    /// Side of the square image in pixels.
    pub size: u32,
    /// Margin on each side, as a fraction of the side.
    pub margin: f32,
    /// Background colour (RGB).
    pub background: [u8; 3],
}

impl Default for RenderOptions {
    /// 64 px, 6% margin, white.
    fn default() -> Self {
        Self {
            size: 64,
            margin: 0.06,
            background: [255, 255, 255],
        }
    }
}

/// Parsing options: an `<image href>` naming a file is never read (a package must not make the
/// renderer open `/dev/zero` or embed a local file); `data:` URLs are kept.
fn options() -> usvg::Options<'static> {
    usvg::Options {
        image_href_resolver: usvg::ImageHrefResolver {
            resolve_data: usvg::ImageHrefResolver::default_data_resolver(),
            resolve_string: Box::new(|_, _| None),
        },
        ..usvg::Options::default()
    }
}

/// The SVG document `svg` rendered into a `size`×`size` RGB image, or the parser's message.
pub fn render(svg: &str, o: &RenderOptions) -> Result<RgbImage, String> {
    if !(0.0..0.45).contains(&o.margin) {
        return Err(format!("margin must be in [0, 0.45), got {}", o.margin));
    }
    let tree = usvg::Tree::from_str(svg, &options()).map_err(|e| e.to_string())?;
    let side = o.size as f32;
    let mut pixmap =
        tiny_skia::Pixmap::new(o.size, o.size).ok_or_else(|| format!("bad size {}", o.size))?;
    let [r, g, b] = o.background;
    pixmap.fill(tiny_skia::Color::from_rgba8(r, g, b, 255));
    let size = tree.size();
    let inner = side * (1.0 - 2.0 * o.margin);
    let scale = inner / size.width().max(size.height());
    let dx = (side - size.width() * scale) / 2.0;
    let dy = (side - size.height() * scale) / 2.0;
    let transform = tiny_skia::Transform::from_row(scale, 0.0, 0.0, scale, dx, dy);
    resvg::render(&tree, transform, &mut pixmap.as_mut());
    // Opaque everywhere (the background was opaque), so premultiplied RGBA is plain RGBA.
    let rgb = pixmap
        .data()
        .chunks_exact(4)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect();
    RgbImage::from_raw(o.size, o.size, rgb).ok_or_else(|| "pixel buffer size".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_square_is_centred_with_the_margin_on_the_background() {
        let svg = r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10" color="black"><rect width="10" height="10" fill="currentColor"/></svg>"#;
        let o = RenderOptions {
            size: 50,
            margin: 0.1,
            background: [255, 0, 0],
        };
        let img = render(svg, &o).expect("render");
        assert_eq!(img.dimensions(), (50, 50));
        assert_eq!(
            img.get_pixel(2, 2).0,
            [255, 0, 0],
            "margin shows the background"
        );
        assert_eq!(img.get_pixel(25, 25).0, [0, 0, 0], "currentColor is black");
        assert_eq!(
            img.get_pixel(6, 25).0,
            [0, 0, 0],
            "the icon starts at the margin"
        );
        assert_eq!(img.get_pixel(4, 25).0, [255, 0, 0]);
    }

    #[test]
    fn a_wide_icon_is_fitted_by_its_width_and_centred_vertically() {
        let svg = r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 20 10"><rect width="20" height="10" fill="blue"/></svg>"#;
        let o = RenderOptions {
            size: 40,
            margin: 0.0,
            background: [255, 255, 255],
        };
        let img = render(svg, &o).expect("render");
        assert_eq!(img.get_pixel(20, 5).0, [255, 255, 255]);
        assert_eq!(img.get_pixel(20, 20).0, [0, 0, 255]);
    }

    #[test]
    fn image_references_to_files_are_not_read() {
        let svg = r#"<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" viewBox="0 0 10 10"><image width="10" height="10" xlink:href="/dev/zero"/></svg>"#;
        let img = render(svg, &RenderOptions::default()).expect("renders without the file");
        assert!(img.pixels().all(|p| p.0 == [255, 255, 255]));
    }

    #[test]
    fn broken_svg_is_an_error() {
        assert!(render("<svg", &RenderOptions::default()).is_err());
    }
}
