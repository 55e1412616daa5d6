//! The mood chart of a progress report: average session mood per week on the 1-5 scale,
//! drawn by plotters into a pixel buffer and encoded as PNG, so the PDF and the DOCX show
//! the same picture. Weeks without a session leave a gap in the line.

use std::sync::Once;

use plotters::{
    prelude::*,
    style::{FontStyle, register_font},
};

use crate::{Image, RenderError};

/// Pixels; drawn at about 170 dpi on an A4 page's body width.
const WIDTH: u32 = 1_200;
const HEIGHT: u32 = 520;
const FONT: &str = "sans-serif";

/// One week of the chart.
#[derive(Debug, Clone)]
pub struct MoodPoint {
    /// The label under the week ("3 Nov").
    pub label: String,
    /// The week's average mood (1-5), if it had sessions.
    pub mood: Option<f64>,
}

/// Draws the chart of `points` (oldest first) with `caption` under it.
pub fn mood_chart(points: &[MoodPoint], caption: &str) -> Result<Image, RenderError> {
    static FONTS: Once = Once::new();
    FONTS.call_once(|| {
        // Both register the same embedded file, which cannot be invalid.
        let _ = register_font(FONT, FontStyle::Normal, crate::fonts::REGULAR);
        let _ = register_font(FONT, FontStyle::Bold, crate::fonts::BOLD);
    });
    let mut pixels = vec![255u8; (WIDTH * HEIGHT * 3) as usize];
    draw(points, &mut pixels).map_err(|e| RenderError::Chart(e.to_string()))?;
    let mut png = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut png, WIDTH, HEIGHT);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder
            .write_header()
            .map_err(|e| RenderError::Chart(e.to_string()))?;
        writer
            .write_image_data(&pixels)
            .map_err(|e| RenderError::Chart(e.to_string()))?;
    }
    Ok(Image {
        png,
        width: WIDTH,
        height: HEIGHT,
        caption: caption.to_owned(),
    })
}

fn draw(points: &[MoodPoint], pixels: &mut [u8]) -> Result<(), Box<dyn std::error::Error>> {
    let accent = RGBColor(0x1d, 0x4e, 0x89);
    let grid = RGBColor(0xe3, 0xe7, 0xec);
    let root = BitMapBackend::with_buffer(pixels, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let n = points.len().max(1);
    let mut chart = ChartBuilder::on(&root)
        .margin(24)
        .x_label_area_size(56)
        .y_label_area_size(130)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0.6f64..5.4)?;
    let labels = [
        "",
        "very low",
        "low",
        "neutral",
        "positive",
        "very positive",
    ];
    // At most about twelve labels along the bottom, whatever the number of weeks.
    let step = n.div_ceil(12).max(1);
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(TRANSPARENT)
        .bold_line_style(grid)
        .y_labels(5)
        .y_label_formatter(&|v| {
            let i = v.round() as usize;
            if (v - v.round()).abs() < 0.01 && (1..=5).contains(&i) {
                labels[i].to_owned()
            } else {
                String::new()
            }
        })
        .x_labels(n)
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() > 0.01 || i < 0.0 {
                return String::new();
            }
            let i = i as usize;
            match points.get(i) {
                Some(point) if i.is_multiple_of(step) => point.label.clone(),
                _ => String::new(),
            }
        })
        .label_style((FONT, 22).into_font().color(&RGBColor(0x5f, 0x66, 0x70)))
        .axis_style(RGBColor(0xc9, 0xcf, 0xd6))
        .draw()?;
    // One line per run of weeks with sessions.
    let mut run: Vec<(f64, f64)> = Vec::new();
    let mut runs = Vec::new();
    for (i, point) in points.iter().enumerate() {
        match point.mood {
            Some(mood) => run.push((i as f64, mood.clamp(1.0, 5.0))),
            None if !run.is_empty() => runs.push(std::mem::take(&mut run)),
            None => {}
        }
    }
    if !run.is_empty() {
        runs.push(run);
    }
    for run in &runs {
        chart.draw_series(LineSeries::new(run.iter().copied(), accent.stroke_width(4)))?;
        chart.draw_series(
            run.iter()
                .map(|&(x, y)| Circle::new((x, y), 7, accent.filled())),
        )?;
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_is_a_png_of_its_size() {
        let points: Vec<MoodPoint> = (0..12)
            .map(|i| MoodPoint {
                label: format!("w{i}"),
                mood: (i % 4 != 3).then_some(1.0 + (i % 5) as f64),
            })
            .collect();
        let image = mood_chart(&points, "Mood").unwrap();
        assert_eq!(&image.png[1..4], b"PNG");
        assert_eq!((image.width, image.height), (WIDTH, HEIGHT));
        assert!(mood_chart(&[], "empty").is_ok());
    }
}
