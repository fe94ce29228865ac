//! The PNG that `bots simulate --plot` and `examples/grpo.rs --plot` draw: per row, held-out accuracy
//! and a moving average of ETR over steps, one line per selector. Plotting is not part of the library's
//! API, so the example includes this file with `#[path]`; it depends only on plotters, image, anyhow and
//! `bots::__private::write_atomic` (a reader never sees a half-written PNG).

use std::path::Path;

use anyhow::Result;

/// One selector's curves.
pub struct Curves {
    pub name: String,
    /// (step, held-out accuracy), step 0 (before training) first; steps may be sparse.
    pub accuracy: Vec<(usize, f64)>,
    /// ETR of each step's batch: entry t is step t + 1.
    pub etr: Vec<f64>,
}

/// One row of two panels.
pub struct Row {
    /// Prefix of the panel titles ("" for none).
    pub title: String,
    pub curves: Vec<Curves>,
}

const FONT: &[u8] = include_bytes!("../assets/DejaVuSansMono.ttf");
/// Panel size in pixels.
const PANEL: (u32, u32) = (550, 420);

/// Draws `rows` into the PNG `path`, atomically.
pub fn write_png(path: &Path, rows: &[Row]) -> Result<()> {
    use plotters::prelude::*;
    plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
        .map_err(|_| anyhow::anyhow!("the bundled font could not be loaded"))?;
    let (width, height) = (2 * PANEL.0, PANEL.1 * rows.len().max(1) as u32);
    let mut rgb = vec![0u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
        root.fill(&WHITE)?;
        for (row, area) in rows.iter().zip(root.split_evenly((rows.len().max(1), 1))) {
            let curves = &row.curves;
            let (left, right) = area.split_horizontally(PANEL.0);
            let last_acc = curves.iter().filter_map(|c| c.accuracy.last().map(|a| a.0));
            let steps = curves.iter().map(|c| c.etr.len()).chain(last_acc).max().unwrap_or(0).max(1);
            let (lo, hi) = curves
                .iter()
                .flat_map(|c| &c.accuracy)
                .fold((f64::MAX, f64::MIN), |(lo, hi), a| (lo.min(a.1), hi.max(a.1)));
            let (lo, hi) = if lo > hi { (0.0, 1.0) } else { (lo, hi.max(lo + 1e-3)) };
            let window = (steps / 20).max(1);
            let prefix = if row.title.is_empty() { String::new() } else { format!("{}: ", row.title) };
            for (area, title, is_accuracy) in
                [(left, "held-out accuracy", true), (right, "ETR (moving average)", false)]
            {
                let y = if is_accuracy { lo..hi } else { 0.0..1.0 };
                let mut chart = ChartBuilder::on(&area)
                    .caption(format!("{prefix}{title}"), ("sans-serif", 20))
                    .margin(10)
                    .x_label_area_size(30)
                    .y_label_area_size(45)
                    .build_cartesian_2d(0..steps, y)?;
                chart.configure_mesh().x_desc("step").draw()?;
                for (i, c) in curves.iter().enumerate() {
                    let color = Palette99::pick(i).to_rgba();
                    let points: Vec<(usize, f64)> = if is_accuracy {
                        c.accuracy.clone()
                    } else {
                        (0..c.etr.len())
                            .map(|t| {
                                let w = &c.etr[t.saturating_sub(window - 1)..=t];
                                (t + 1, w.iter().sum::<f64>() / w.len() as f64)
                            })
                            .collect()
                    };
                    chart
                        .draw_series(LineSeries::new(points, color.stroke_width(2)))?
                        .label(c.name.clone())
                        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
                }
                let corner = if is_accuracy { SeriesLabelPosition::UpperLeft } else { SeriesLabelPosition::LowerRight };
                chart
                    .configure_series_labels()
                    .position(corner)
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK)
                    .draw()?;
            }
        }
        root.present()?;
    }
    let io_err = |source| bots::BotsError::Io { path: path.to_path_buf(), source };
    bots::__private::write_atomic(path, |file| {
        let mut out = std::io::BufWriter::new(file);
        image::ImageEncoder::write_image(
            image::codecs::png::PngEncoder::new(&mut out),
            &rgb,
            width,
            height,
            image::ColorType::Rgb8,
        )
        .map_err(|e| io_err(std::io::Error::other(e)))?;
        out.into_inner().map_err(|e| io_err(e.into_error()))
    })?;
    Ok(())
}
