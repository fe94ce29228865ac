//! The one probe for a CUDA driver, used by the CUDA backend, the tests and the benches alike.
//!
//! cudarc's own `sys::is_culib_present()` exists only when cudarc loads the driver at run time; when
//! another crate in the same binary (candle-core with `cuda`) makes cudarc link it instead, that function
//! is gone. This probe works either way: it asks the dynamic loader for the driver library by the names
//! cudarc itself tries first, so a `libcuda` found through `LD_LIBRARY_PATH` (or already linked in)
//! counts, exactly as it does for cudarc's loader.

/// Library names tried, in order (cudarc's first candidates for "cuda" / "nvcuda").
#[cfg(windows)]
const DRIVER_NAMES: &[&str] = &["nvcuda.dll"];
#[cfg(not(windows))]
const DRIVER_NAMES: &[&str] = &["libcuda.so.1", "libcuda.so"];

/// True when the CUDA driver library can be loaded in this process.
pub fn driver_present() -> bool {
    DRIVER_NAMES.iter().any(|name| {
        // SAFETY: loading the CUDA driver runs its initialisers, which have no preconditions on our side;
        // the handle is dropped at once (the loader keeps the library if cudarc or a link holds it too).
        unsafe { libloading::Library::new(*name) }.is_ok()
    })
}

/// True when the CUDA backend can start here: the kernels were compiled in (nvcc at build time) and a
/// driver library is present. A device may still be missing; opening one says so.
pub fn cuda_usable() -> bool {
    crate::kernels::has_ptx() && driver_present()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The probe agrees with a direct load attempt of the same names and never panics; on this machine
    /// (no driver) it is false, on a GPU machine true.
    #[test]
    fn probe_matches_the_loader() {
        let direct = DRIVER_NAMES.iter().any(|n| unsafe { libloading::Library::new(*n) }.is_ok());
        assert_eq!(driver_present(), direct);
        assert!(!cuda_usable() || driver_present());
        // A name that cannot exist is refused by the same loader call the probe uses.
        assert!(unsafe { libloading::Library::new("libbots-no-such-driver.so.1") }.is_err());
    }
}
