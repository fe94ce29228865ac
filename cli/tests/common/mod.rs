//! Helpers shared by the application's integration tests (the library's are in `../../tests/common`).

use std::path::{Path, PathBuf};

/// The shipped data/ folder: under cargo's manifest path, or relative to the working directory where
/// the harness runs from a copy of the repository elsewhere (the GPU machine).
#[allow(dead_code)]
pub fn data_dir() -> PathBuf {
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data");
    if !built.exists() && Path::new("data").exists() {
        return PathBuf::from("data");
    }
    built
}

/// The `bots` binary: cargo's path to it, or, where the test harness was copied elsewhere (the GPU
/// machine runs .device/bin/test-test-* from the repository root, without target/), the staged
/// `.device/bin/bin-bots`; `BOTS_BIN` overrides both.
#[allow(dead_code)]
pub fn bots_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("BOTS_BIN") {
        return PathBuf::from(p);
    }
    let built = PathBuf::from(env!("CARGO_BIN_EXE_bots"));
    let staged = PathBuf::from(".device/bin/bin-bots");
    if !built.exists() && staged.exists() {
        return staged.canonicalize().unwrap_or(staged);
    }
    built
}

/// Says on the test process's real stderr that the running test skipped its checks, and why. libtest
/// captures `println!`/`eprintln!` of passing tests; a write to `std::io::stderr()` is not captured, so
/// `cargo test` shows the line even when the test passes.
#[allow(dead_code)]
pub fn skip(reason: &str) {
    use std::io::Write;
    let test = std::thread::current().name().unwrap_or("?").to_string();
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {reason}");
}

/// True when the CUDA backend can run here: kernels compiled in, a driver and a device present.
/// Otherwise says `SKIPPED <test>: no CUDA driver` on stderr (see [`skip`]) and returns false, or panics
/// under `BOTS_REQUIRE_GPU=1`.
#[allow(dead_code)]
pub fn gpu_available() -> bool {
    let ok = bots::cuda_usable() && cudarc::driver::CudaContext::device_count().map(|c| c > 0).unwrap_or(false);
    if !ok {
        if std::env::var("BOTS_REQUIRE_GPU").is_ok_and(|v| v == "1") {
            panic!("BOTS_REQUIRE_GPU=1 but no CUDA driver/device is usable (or the crate was built without nvcc)");
        }
        skip("no CUDA driver (or built without nvcc): GPU checks not run");
    }
    ok
}
