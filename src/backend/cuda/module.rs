//! Loading the kernels' PTX into a context, with the JIT error log, and looking up every kernel.

use std::ffi::{c_void, CString};
use std::sync::Arc;

use cudarc::driver::{result, sys, CudaContext};

use super::cuda_err;
use crate::abi::Kernel as K;
use crate::error::{BotsError, Result};
use crate::kernels;

/// The loaded module and its kernels, indexed by [`K`].
pub(super) struct Module {
    module: sys::CUmodule,
    pub(super) funcs: Vec<sys::CUfunction>,
    ctx: Arc<CudaContext>,
}

impl Module {
    pub(super) fn load(ctx: &Arc<CudaContext>) -> Result<Module> {
        let ptx = kernels::bots_ptx().map_err(|why| BotsError::CudaUnavailable(why.into()))?;
        let src = CString::new(ptx).map_err(|e| BotsError::Cuda(format!("PTX contains a NUL byte: {e}")))?;
        ctx.bind_to_thread().map_err(cuda_err)?;
        // cuModuleLoadDataEx with the JIT error log, so that a PTX the driver refuses (ISA version,
        // target, a ptxas error) says why in the first GPU log rather than only
        // CUDA_ERROR_INVALID_PTX. The PTX text is NUL-terminated (CString), as the driver requires.
        let mut log = vec![0u8; 1 << 14];
        let mut opts =
            [sys::CUjit_option::CU_JIT_ERROR_LOG_BUFFER, sys::CUjit_option::CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES];
        // The size option's value is passed in the pointer itself (the driver API's convention).
        let mut vals: [*mut c_void; 2] = [log.as_mut_ptr() as *mut c_void, log.len() as *mut c_void];
        let mut module = std::mem::MaybeUninit::<sys::CUmodule>::uninit();
        // SAFETY: `src` is NUL-terminated PTX, the option arrays hold 2 entries each and `log` outlives
        // the call; `module` is written before it is read (only on success).
        let loaded = unsafe {
            sys::cuModuleLoadDataEx(
                module.as_mut_ptr(),
                src.as_ptr() as *const c_void,
                2,
                opts.as_mut_ptr(),
                vals.as_mut_ptr(),
            )
        }
        .result();
        if let Err(e) = loaded {
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let jit = String::from_utf8_lossy(&log[..end]);
            return Err(BotsError::Cuda(format!(
                "loading the kernels' PTX ({} bytes): {e:?}; JIT log: {}",
                ptx.len(),
                jit.trim()
            )));
        }
        // SAFETY: cuModuleLoadDataEx succeeded, so it wrote the handle.
        let module = unsafe { module.assume_init() };
        let mut funcs = Vec::with_capacity(K::ALL.len());
        for k in K::ALL {
            let name = k.name();
            let c = CString::new(name).expect("entry names have no NUL");
            // SAFETY: `module` is the live module loaded above.
            match unsafe { result::module::get_function(module, c) } {
                Ok(f) => funcs.push(f),
                Err(e) => {
                    // SAFETY: loaded above, not yet owned by a Module, unloaded once.
                    let _ = unsafe { result::module::unload(module) };
                    return Err(BotsError::Cuda(format!("kernel `{name}` missing from the PTX: {e}")));
                }
            }
        }
        Ok(Module { module, funcs, ctx: ctx.clone() })
    }
}

impl Drop for Module {
    fn drop(&mut self) {
        if self.ctx.bind_to_thread().is_ok() {
            // SAFETY: the module was loaded by Module::load and is unloaded only here, once.
            let _ = unsafe { result::module::unload(self.module) };
        }
    }
}

// SAFETY: a CUmodule and its CUfunctions are handles the driver lets any thread use once the context
// is current (every use binds `ctx` first); the module is unloaded only by Drop, which needs ownership.
unsafe impl Send for Module {}
