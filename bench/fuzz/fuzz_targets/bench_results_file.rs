//! The suite's results file (`report::SuiteResults::parse`, what `SuiteResults::load` and
//! `xpptp-bench chart` do with the file's text): any bytes give results or an error, never
//! a panic; parsed results go through what `chart` does with them: the derived ratios, the
//! summary table, and the SVG charts (DejaVu Sans, as `chart` defaults to; a chart
//! plotters refuses to draw is an error for the user, not a crash).
#![no_main]

use libfuzzer_sys::fuzz_target;
use xpptp_bench::chart::{ChartOptions, render_all};
use xpptp_bench::report::SuiteResults;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(mut results) = SuiteResults::parse(text) else {
        return;
    };
    results.compute_ratios();
    let _ = results.to_string();
    for scenario in &results.scenarios {
        let _ = scenario.to_string();
    }
    let out = std::env::temp_dir().join(format!("xpptp-bench-fuzz-{}", std::process::id()));
    let options = ChartOptions {
        png: false,
        ..ChartOptions::default()
    };
    let _ = render_all(&results, &out, &options);
});
