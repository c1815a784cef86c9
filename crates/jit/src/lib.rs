//! TorchScript files from Rust code: [`trace_to_file`] runs a closure on example tensors under
//! libtorch's tracer and saves the recorded graph as a TorchScript module whose `forward` takes the
//! inputs and returns the tuple of the closure's outputs. Tensors the closure uses that are not
//! inputs (the weights) are frozen into the graph as constants.

use std::ffi::{c_char, c_void, CStr, CString};
use std::path::Path;
use tch::Tensor;

extern "C" {
    fn evdet_end_tracing_tuple(
        module: *mut c_void,
        fn_name: *const c_char,
        outputs: *const *mut c_void,
        noutputs: libc::c_int,
    ) -> *mut c_char;
    fn evdet_abandon_tracing();
}

#[derive(Debug, thiserror::Error)]
pub enum JitError {
    #[error("tracing: {0}")]
    Trace(String),
    #[error("the traced code panicked: {0}")]
    Panicked(String),
    #[error("{0}")]
    Name(#[from] std::ffi::NulError),
}

/// The first line of a libtorch message, without the tensor dumps and C++ frames that follow.
fn headline(msg: &str) -> String {
    let first = msg.trim().lines().next().unwrap_or("").trim();
    let mut s: String = first.chars().take(400).collect();
    if s.len() < first.len() {
        s.push('…');
    }
    s
}

/// libtorch's last error, if any (tch's C API records errors instead of throwing).
fn last_error() -> Option<String> {
    // SAFETY: returns NULL or a malloc'ed C string that we own.
    unsafe {
        let p = torch_sys::get_and_reset_last_err();
        if p.is_null() {
            return None;
        }
        let s = CStr::from_ptr(p).to_string_lossy().into_owned();
        libc::free(p as *mut c_void);
        Some(s)
    }
}

/// Traces `f` on `inputs` and saves the module to `path` (its `forward` is the traced function).
pub fn trace_to_file(
    path: &Path,
    inputs: &[Tensor],
    f: impl FnOnce(&[Tensor]) -> Vec<Tensor>,
) -> Result<(), JitError> {
    let name = CString::new("EvdetTraced")?;
    let forward = CString::new("forward")?;
    let file = CString::new(path.to_string_lossy().as_bytes())?;
    let ptrs: Vec<*mut torch_sys::C_tensor> = inputs.iter().map(|t| t.as_ptr() as *mut _).collect();
    // SAFETY: tch's C API; the tensors outlive the call.
    let module =
        unsafe { torch_sys::atm_create_for_tracing(name.as_ptr(), ptrs.as_ptr(), ptrs.len() as _) };
    if module.is_null() {
        return Err(JitError::Trace(
            last_error().unwrap_or_else(|| "cannot start tracing".into()),
        ));
    }
    let outputs = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(inputs))) {
        Ok(o) => o,
        Err(p) => {
            // SAFETY: leaves tracing mode; the module is ours to free.
            unsafe {
                evdet_abandon_tracing();
                torch_sys::atm_free(module);
            }
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            return Err(JitError::Panicked(headline(&msg)));
        }
    };
    let out_ptrs: Vec<*mut c_void> = outputs.iter().map(|t| t.as_ptr() as *mut _).collect();
    // SAFETY: the module came from atm_create_for_tracing; the output tensors are alive.
    let err = unsafe {
        evdet_end_tracing_tuple(
            module as *mut c_void,
            forward.as_ptr(),
            out_ptrs.as_ptr(),
            out_ptrs.len() as _,
        )
    };
    let result = if err.is_null() {
        // SAFETY: a valid module; errors are recorded for last_error.
        unsafe { torch_sys::atm_save(module, file.as_ptr()) };
        match last_error() {
            Some(e) => Err(JitError::Trace(format!("saving {}: {e}", path.display()))),
            None => Ok(()),
        }
    } else {
        // SAFETY: a malloc'ed message from the shim.
        let msg = unsafe {
            let s = CStr::from_ptr(err).to_string_lossy().into_owned();
            libc::free(err as *mut c_void);
            s
        };
        Err(JitError::Trace(headline(&msg)))
    };
    // SAFETY: freed once, not used after.
    unsafe { torch_sys::atm_free(module) };
    drop(outputs);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, IValue, Kind};

    #[test]
    fn a_traced_tuple_loads_and_runs() {
        let dir = std::env::temp_dir().join(format!("evdet-jit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.pt");
        let w = Tensor::from_slice(&[2f32, 3.]);
        let ex = [
            Tensor::ones([2], (Kind::Float, Device::Cpu)),
            Tensor::ones([2], (Kind::Float, Device::Cpu)),
        ];
        trace_to_file(&path, &ex, |x| vec![&x[0] * &w + &x[1], &x[0] - 1.0]).unwrap();
        let m = tch::CModule::load(&path).unwrap();
        let out = m
            .forward_is(&[
                IValue::Tensor(Tensor::from_slice(&[1f32, 2.])),
                IValue::Tensor(Tensor::from_slice(&[10f32, 20.])),
            ])
            .unwrap();
        let IValue::Tuple(v) = out else {
            panic!("not a tuple: {out:?}")
        };
        let t = |i: usize| match &v[i] {
            IValue::Tensor(t) => Vec::<f32>::try_from(t).unwrap(),
            other => panic!("{other:?}"),
        };
        assert_eq!(t(0), vec![12., 26.]);
        assert_eq!(t(1), vec![0., 1.]);
        let e = trace_to_file(&path, &ex, |_| panic!("boom")).unwrap_err();
        assert!(e.to_string().contains("boom"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
