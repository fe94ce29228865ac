//! The PTX of the CUDA kernels, embedded at build time (`build.rs` compiles `kernels/*.cu` with nvcc).
//! Host code only sees the text: it never knows how the PTX was made.
//!
//! Built without nvcc, [`bots_ptx`] is `Err` and the CUDA backend answers
//! [`crate::BotsError::CudaUnavailable`].
//!
//! The text is embedded deflated (`build.rs` writes `bots.ptx.deflate` beside `bots.ptx`) and inflated
//! once, on first use: every binary that links the crate (each test harness, bench and example) carries
//! the kernels, ~40 KB deflated instead of ~270 KB of text.
use std::sync::OnceLock;

/// `kernels/bots.cu` as deflated PTX, or `None` when the crate was built without nvcc.
#[cfg(bots_ptx)]
const BOTS_PTX_DEFLATED: Option<&[u8]> = Some(include_bytes!(concat!(env!("OUT_DIR"), "/bots.ptx.deflate")));
#[cfg(not(bots_ptx))]
const BOTS_PTX_DEFLATED: Option<&[u8]> = None;

/// Whether this build carries the kernels (nvcc ran at build time), without inflating them.
pub fn has_ptx() -> bool {
    BOTS_PTX_DEFLATED.is_some()
}

/// `kernels/bots.cu` as PTX (`.version` <= 9.0 for driver 580 / CUDA 13.0), inflated on first use; `Err`
/// says why there is none: built without nvcc ([`NO_PTX_REASON`]), or embedded bytes that do not inflate
/// to text (a damaged binary).
pub fn bots_ptx() -> Result<&'static str, &'static str> {
    static PTX: OnceLock<Result<String, &'static str>> = OnceLock::new();
    let packed = BOTS_PTX_DEFLATED.ok_or(NO_PTX_REASON)?;
    PTX.get_or_init(|| inflate(packed)).as_deref().map_err(|e| *e)
}

fn inflate(packed: &[u8]) -> Result<String, &'static str> {
    const DAMAGED: &str =
        "the kernels' PTX embedded in this binary does not inflate to text: the binary is damaged; rebuild it";
    let text = miniz_oxide::inflate::decompress_to_vec(packed).map_err(|_| DAMAGED)?;
    String::from_utf8(text).map_err(|_| DAMAGED)
}

/// Why [`bots_ptx`] is missing, for the `CudaUnavailable` error.
pub const NO_PTX_REASON: &str = "built without nvcc: the kernels were not compiled; set NVCC or CUDA_HOME and rebuild";

/// Whether this build carries the CUDA kernels: `Ok` with the PTX's ISA version (`"9.0"`, say: the
/// oldest driver that loads it is the one of that CUDA version), or `Err` saying why not and what to do.
/// A driver and a device are still needed at run time ([`crate::cuda_usable`], [`crate::CudaPool::new`]).
///
/// ```
/// match bots::cuda_kernels() {
///     Ok(version) => println!("kernels built, PTX ISA {version}"),
///     Err(why) => println!("no CUDA backend in this build: {why}"),
/// }
/// ```
pub fn cuda_kernels() -> std::result::Result<&'static str, &'static str> {
    bots_ptx().map(|ptx| ptx.lines().find_map(|l| l.trim().strip_prefix(".version ")).map(str::trim).unwrap_or("?"))
}

#[cfg(test)]
mod tests {
    /// When the PTX is present, every listed entry point is in it and its ISA version is <= 9.0.
    #[test]
    fn entries_are_in_the_ptx() {
        if !super::has_ptx() {
            crate::test_skip("built without nvcc: no PTX to check");
            return;
        }
        let ptx = super::bots_ptx().expect("the embedded PTX inflates");
        for k in crate::abi::Kernel::ALL {
            assert!(ptx.contains(&format!(".entry {}(", k.name())), "missing .entry {}", k.name());
        }
        let v = ptx.lines().find_map(|l| l.trim().strip_prefix(".version ")).expect(".version line");
        let (maj, min) = v.trim().split_once('.').expect("major.minor");
        let (maj, min): (u32, u32) = (maj.parse().unwrap(), min.parse().unwrap());
        assert!((maj, min) <= (9, 0), "PTX .version {v} is newer than 9.0");
    }

    /// Approximate arithmetic (`.approx`) and fused multiply-adds (`fma.`) appear in the fast entries
    /// (`KernelMode::Fast`) and nowhere else: the exact entries stay bit for bit with the CPU twin.
    #[test]
    fn only_the_fast_entries_approximate() {
        if !super::has_ptx() {
            crate::test_skip("built without nvcc: no PTX to check");
            return;
        }
        let ptx = super::bots_ptx().expect("the embedded PTX inflates");
        let fast = [
            crate::abi::Kernel::UpdateSampleScoreFast,
            crate::abi::Kernel::RadixFilterFast,
            crate::abi::Kernel::FinishDeferredFast,
            crate::abi::Kernel::UpdateSampleScoreFastPrior,
        ];
        assert_eq!(ptx.split(".entry ").count() - 1, crate::abi::Kernel::ALL.len(), "one .entry per kernel");
        for k in crate::abi::Kernel::ALL {
            let body = ptx
                .split(".entry ")
                .find(|b| b.starts_with(&format!("{}(", k.name())))
                .unwrap_or_else(|| panic!("missing .entry {}", k.name()));
            let approx = body.contains(".approx") || body.contains("fma.");
            assert_eq!(
                approx,
                fast.contains(k),
                "{}: .approx or fma {}",
                k.name(),
                if approx { "present" } else { "absent" }
            );
        }
    }

    /// Damaged embedded bytes give the error that says so, not a panic or garbage text.
    #[test]
    fn damaged_ptx_is_an_error() {
        let err = super::inflate(b"not deflate data").unwrap_err();
        assert!(err.contains("damaged"), "{err}");
        let not_text = miniz_oxide::deflate::compress_to_vec(&[0xff, 0xfe, 0x00], 6);
        assert!(super::inflate(&not_text).is_err());
        let text = miniz_oxide::deflate::compress_to_vec(b".version 9.0", 6);
        assert_eq!(super::inflate(&text).unwrap(), ".version 9.0");
    }
}
