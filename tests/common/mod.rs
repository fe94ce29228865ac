//! Helpers shared by the integration tests.

/// True when the CUDA backend can run here: kernels compiled in, a driver and a device present.
/// Otherwise prints `SKIPPED: no CUDA driver` and returns false, or panics under `BOTS_REQUIRE_GPU=1`.
#[allow(dead_code)]
pub fn gpu_available() -> bool {
    let ok = bots::kernels::BOTS_PTX.is_some()
        && unsafe { cudarc::driver::sys::is_culib_present() }
        && cudarc::driver::CudaContext::device_count().map(|c| c > 0).unwrap_or(false);
    if !ok {
        if std::env::var("BOTS_REQUIRE_GPU").is_ok_and(|v| v == "1") {
            panic!("BOTS_REQUIRE_GPU=1 but no CUDA driver/device is usable (or the crate was built without nvcc)");
        }
        println!("SKIPPED: no CUDA driver");
    }
    ok
}
