//! Compiles `csrc/c10d_shim.cpp` against the headers of the libtorch tch links (the torch wheel), with
//! Gloo (headers from Debian's libgloo-dev; the implementation is inside libtorch_cpu) and, when the
//! CUDA and NCCL headers of the wheel's nvidia packages are present, NCCL (implementation inside
//! libtorch_cuda). `scripts/setup.sh` installs both sets of headers.
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=csrc/c10d_shim.cpp");
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-env-changed=EVDET_NO_NCCL");
    let lib = PathBuf::from(
        std::env::var("DEP_TCH_LIBTORCH_LIB").expect("torch-sys exports the libtorch lib folder"),
    );
    let lib = lib.canonicalize().unwrap_or(lib);
    let torch = lib
        .parent()
        .expect("libtorch lib folder has a parent")
        .to_path_buf();
    let include = torch.join("include");
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .pic(true)
        .warnings(false)
        .flag("-std=c++17")
        .define("_GLIBCXX_USE_CXX11_ABI", "1")
        .define("USE_C10D_GLOO", None)
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .file("csrc/c10d_shim.cpp");
    if !Path::new("/usr/include/gloo/config.h").exists() {
        panic!(
            "the Gloo headers are missing: install Debian's libgloo-dev (scripts/setup.sh does)"
        );
    }
    // The wheel's CUDA packages live beside it: site-packages/nvidia/{cu13,nccl}/include.
    let nvidia = torch.parent().map(|p| p.join("nvidia"));
    let cuda_headers = nvidia.as_ref().and_then(|n| {
        let cu = n.join("cu13/include");
        let needed = [
            cu.join("cuda_runtime.h"),
            cu.join("crt/host_config.h"),
            cu.join("cccl/cuda/std/version"),
            n.join("nccl/include/nccl.h"),
        ];
        needed
            .iter()
            .all(|p| p.exists())
            .then(|| [cu.clone(), cu.join("cccl"), n.join("nccl/include")])
    });
    let nccl = lib.join("libtorch_cuda.so").exists()
        && cuda_headers.is_some()
        && std::env::var_os("EVDET_NO_NCCL").is_none();
    if nccl {
        for dir in cuda_headers.iter().flatten() {
            build.include(dir);
        }
        build
            .define("USE_C10D_NCCL", None)
            .define("EVDET_NCCL", None);
    } else {
        println!(
            "cargo:warning=evdet-dist: building without NCCL (CUDA/NCCL headers not found beside {}); run scripts/setup.sh for GPU training",
            torch.display()
        );
    }
    build.compile("evdet_c10d_shim");
    println!("cargo:rustc-link-search=native={}", lib.display());
    println!("cargo:rustc-link-lib=dylib=torch_cpu");
    println!("cargo:rustc-link-lib=dylib=c10");
    if nccl {
        println!("cargo:rustc-link-lib=dylib=torch_cuda");
        println!("cargo:rustc-link-lib=dylib=c10_cuda");
    }
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
}
