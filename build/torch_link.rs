//! Build script shared by the crates that link libtorch: gives every binary and test an rpath to the
//! wheel's `torch/lib` (so nothing needs LD_LIBRARY_PATH) and links `libtorch_cuda.so` explicitly, which
//! as-needed linking would otherwise drop, leaving CUDA silently unavailable. In the command-line
//! package only `evdet-torch` links libtorch: the `evdet` front end must start without loading it.
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        return;
    };
    let lib = PathBuf::from(&lib);
    let lib = lib.canonicalize().unwrap_or(lib);
    let cli = std::env::var("CARGO_PKG_NAME").as_deref() == Ok("evdet-cli");
    let arg = |a: String| {
        if cli {
            println!("cargo:rustc-link-arg-bin=evdet-torch={a}");
        } else {
            println!("cargo:rustc-link-arg={a}");
        }
    };
    arg(format!("-Wl,-rpath,{}", lib.display()));
    if cli {
        // Integration tests that read tensors themselves need the path too (only the path: a test
        // process that maps libtorch_cuda would lend its memory peak to the children it forks).
        println!("cargo:rustc-link-arg-tests=-Wl,-rpath,{}", lib.display());
    }
    if lib.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-search=native={}", lib.display());
        arg("-Wl,--no-as-needed,-ltorch_cuda,--as-needed".into());
    }
}
