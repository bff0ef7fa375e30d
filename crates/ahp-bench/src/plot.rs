//! PNG charts with plotters: drawn into an RGB buffer (text from an embedded font, so no system
//! fonts are needed), encoded by `image` and written atomically.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::{anyhow, Context, Result};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

/// A chart with `f64` axes on the RGB buffer.
type Chart<'a, 'b> =
    ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Draws the legend of the labelled series in a box at `position`.
fn legend<'a, 'b: 'a>(
    chart: &mut Chart<'a, 'b>,
    position: SeriesLabelPosition,
    font_size: u32,
) -> Result<()> {
    chart
        .configure_series_labels()
        .position(position)
        .label_font((FAMILY, font_size))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)
}

/// DejaVu Sans, subset to ASCII and a few symbols (see `assets/FONT-LICENSE.txt`).
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans-subset.ttf");

/// The font family the charts use.
pub const FAMILY: &str = "sans-serif";

/// Colors of the series, in order.
pub const PALETTE: [RGBColor; 6] = [
    RGBColor(120, 120, 120),
    RGBColor(78, 121, 167),
    RGBColor(89, 161, 79),
    RGBColor(242, 142, 43),
    RGBColor(225, 87, 89),
    RGBColor(176, 122, 161),
];

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing the chart: {e:?}")
}

fn register_font() -> Result<()> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = *DONE
        .get_or_init(|| plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok());
    if ok {
        Ok(())
    } else {
        Err(anyhow!(
            "the embedded chart font is not a valid TrueType font"
        ))
    }
}

/// Draws a `width x height` chart with `draw` and writes it as PNG to `path` (temp file, then
/// rename).
pub fn save_png(
    path: &Path,
    width: u32,
    height: u32,
    draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> Result<()>,
) -> Result<()> {
    register_font()?;
    let mut buf = vec![255u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        draw(&root)?;
        root.present().map_err(err)?;
    }
    let img = image::RgbImage::from_raw(width, height, buf)
        .ok_or_else(|| anyhow!("chart buffer has the wrong size"))?;
    let tmp = ahp_spec::files::TempFile::next_to(path)?;
    img.save_with_format(tmp.path(), image::ImageFormat::Png)
        .with_context(|| format!("{}: cannot write", tmp.path().display()))?;
    tmp.persist()?;
    Ok(())
}

/// One series of a grouped bar chart: a label and `(mean, std)` per group (`None` = no bar).
pub struct BarSeries {
    /// Legend label.
    pub label: String,
    /// Per group: mean and standard deviation.
    pub values: Vec<Option<(f64, f64)>>,
}

/// Grouped bars with error bars (one group per x label, one bar per series).
pub fn grouped_bars(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    title: &str,
    groups: &[String],
    series: &[BarSeries],
    y_desc: &str,
) -> Result<()> {
    let n = groups.len().max(1);
    let top = series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .map(|(m, s)| m + s)
        .fold(0.0f64, f64::max);
    let y_max = ((top * 1.15) / 10.0).ceil() * 10.0;
    let y_max = y_max.clamp(10.0, 100.0);
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FAMILY, 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..y_max)
        .map_err(err)?;
    let labels = groups.to_vec();
    let fmt = move |x: &f64| {
        let i = x.round();
        if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < labels.len() {
            labels[i as usize].clone()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(4 * n + 1)
        .x_label_formatter(&fmt)
        .y_desc(y_desc)
        .label_style((FAMILY, 15))
        .axis_desc_style((FAMILY, 15))
        .draw()
        .map_err(err)?;
    let k = series.len().max(1) as f64;
    let width = 0.8 / k;
    for (si, s) in series.iter().enumerate() {
        let color = PALETTE[si % PALETTE.len()];
        let x0 = |g: usize| g as f64 - 0.4 + si as f64 * width;
        let bars: Vec<_> = s
            .values
            .iter()
            .enumerate()
            .filter_map(|(g, v)| v.map(|(m, _)| (g, m)))
            .map(|(g, m)| {
                Rectangle::new(
                    [(x0(g) + 0.05 * width, 0.0), (x0(g) + 0.95 * width, m)],
                    color.filled(),
                )
            })
            .collect();
        chart
            .draw_series(bars)
            .map_err(err)?
            .label(s.label.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.filled()));
        let whiskers: Vec<_> = s
            .values
            .iter()
            .enumerate()
            .filter_map(|(g, v)| v.filter(|(_, sd)| *sd > 0.0).map(|(m, sd)| (g, m, sd)))
            .map(|(g, m, sd)| {
                let x = x0(g) + 0.5 * width;
                PathElement::new(
                    vec![(x, (m - sd).max(0.0)), (x, m + sd)],
                    BLACK.stroke_width(2),
                )
            })
            .collect();
        chart.draw_series(whiskers).map_err(err)?;
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight, 14)
}

/// A line of a line chart, with an optional band (`lo`, `hi`) around it.
pub struct Line {
    /// Legend label.
    pub label: String,
    /// Points.
    pub points: Vec<(f64, f64)>,
    /// Lower and upper edge of a shaded band, at the same x values.
    pub band: Option<(Vec<f64>, Vec<f64>)>,
    /// Color index into [`PALETTE`].
    pub color: usize,
}

/// A line chart on `area`.
pub fn lines(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[Line],
) -> Result<()> {
    let xs = series.iter().flat_map(|l| l.points.iter().map(|p| p.0));
    let x_max = xs.fold(1.0f64, f64::max);
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FAMILY, 18))
        .margin(10)
        .x_label_area_size(36)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..x_max, 0f64..100f64)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .label_style((FAMILY, 13))
        .axis_desc_style((FAMILY, 13))
        .draw()
        .map_err(err)?;
    for l in series {
        let color = PALETTE[l.color % PALETTE.len()];
        if let Some((lo, hi)) = &l.band {
            let mut poly: Vec<(f64, f64)> =
                l.points.iter().zip(hi).map(|(p, h)| (p.0, *h)).collect();
            poly.extend(l.points.iter().zip(lo).rev().map(|(p, v)| (p.0, *v)));
            chart
                .draw_series(std::iter::once(Polygon::new(poly, color.mix(0.2))))
                .map_err(err)?;
        }
        chart
            .draw_series(LineSeries::new(
                l.points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(err)?
            .label(l.label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
    }
    legend(&mut chart, SeriesLabelPosition::LowerLeft, 12)
}

/// The color of a gate value: white at 1 (untouched), blue towards 0 (suppressed), red above 1
/// (amplified; saturated at 2).
pub fn gate_color(g: f32) -> RGBColor {
    let blend = |t: f32, c: (f32, f32, f32)| {
        let t = t.clamp(0.0, 1.0);
        RGBColor(
            (255.0 + t * (c.0 - 255.0)) as u8,
            (255.0 + t * (c.1 - 255.0)) as u8,
            (255.0 + t * (c.2 - 255.0)) as u8,
        )
    };
    if g < 1.0 {
        blend(1.0 - g, (33.0, 102.0, 172.0))
    } else {
        blend(g - 1.0, (178.0, 24.0, 43.0))
    }
}

/// A heatmap of `values[row][col]` (rows = blocks, columns = heads) with the values printed in
/// the cells.
pub fn heatmap(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    title: &str,
    values: &[Vec<f32>],
) -> Result<()> {
    let rows = values.len().max(1);
    let cols = values.iter().map(Vec::len).max().unwrap_or(1).max(1);
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FAMILY, 18))
        .margin(10)
        .x_label_area_size(32)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..cols as f64, rows as f64..0f64)
        .map_err(err)?;
    let (nr, nc) = (rows, cols);
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(2 * nc + 1)
        .y_labels(2 * nr + 1)
        .x_label_formatter(&move |x: &f64| {
            cell_index(*x, nc).map_or(String::new(), |i| format!("head {i}"))
        })
        .y_label_formatter(&move |y: &f64| {
            cell_index(*y, nr).map_or(String::new(), |i| format!("block {i}"))
        })
        .label_style((FAMILY, 12))
        .draw()
        .map_err(err)?;
    for (r, row) in values.iter().enumerate() {
        for (c, &g) in row.iter().enumerate() {
            let (x, y) = (c as f64, r as f64);
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x, y), (x + 1.0, y + 1.0)],
                    gate_color(g).filled(),
                )))
                .map_err(err)?;
            chart
                .draw_series(std::iter::once(Text::new(
                    format!("{g:.2}"),
                    (x + 0.22, y + 0.62),
                    (FAMILY, 12).into_font().color(&BLACK),
                )))
                .map_err(err)?;
        }
    }
    Ok(())
}

/// The cell whose center (`i + 0.5`) is at `v`, if any: labels go at cell centers only.
fn cell_index(v: f64, n: usize) -> Option<usize> {
    let i = (v - 0.5).round();
    ((v - 0.5 - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < n).then_some(i as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_colors_are_white_at_one_and_saturate() {
        assert_eq!(gate_color(1.0), RGBColor(255, 255, 255));
        assert_eq!(gate_color(0.0), RGBColor(33, 102, 172));
        assert_eq!(gate_color(5.0), RGBColor(178, 24, 43));
    }

    #[test]
    fn charts_render_to_png() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("bars.png");
        save_png(&path, 400, 300, |root| {
            grouped_bars(
                root,
                "t",
                &["a".into(), "b".into()],
                &[BarSeries {
                    label: "m".into(),
                    values: vec![Some((50.0, 5.0)), None],
                }],
                "acc",
            )
        })?;
        let img = image::open(&path)?.to_rgb8();
        assert_eq!(img.dimensions(), (400, 300));
        // The bar's color is in the image.
        assert!(img.pixels().any(|p| p.0 == [120, 120, 120]));
        Ok(())
    }
}
