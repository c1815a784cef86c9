#!/usr/bin/env bash
# Installs what evdet needs on a fresh Debian machine with Rust, gcc and Python 3.11, and does nothing
# when it is already there: zlib headers and CMake ≥ 3.26 (the PyPI wheel, in the venv; Debian 12 has
# 3.25) to build HDF5 2.x from source (hdf5-metno-src; blosc is built by the hdf5-metno crate), the
# Gloo headers for the c10d shim (Debian's libgloo-dev), the PyPI wheel torch==2.11.0 whose libtorch
# tch 0.24 links against (in $EVDET_VENV, shared by every clone) and the CUDA header wheels the shim's
# NCCL side compiles against (nvidia-cuda-crt, nvidia-cuda-cccl; headers only, no GPU needed), and
# numpy, safetensors, onnx, onnxruntime for the ONNX export and its tests; h5py, hdf5plugin, pillow and
# torchvision for the README's Python example.
# Also makes the repository's `.torch` and `.cmake` links that .cargo/config.toml points the build at.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${EVDET_VENV:-$HOME/.evdet/venv}"
torch_version="2.11.0"

need_apt=()
dpkg -s zlib1g-dev >/dev/null 2>&1 || need_apt+=(zlib1g-dev)
dpkg -s pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
dpkg -s libgloo-dev >/dev/null 2>&1 || need_apt+=(libgloo-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]} (apt)" >&2
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! "$venv/bin/python" -c "import torch, sys; sys.exit(0 if torch.__version__.split('+')[0] == '$torch_version' else 1)" >/dev/null 2>&1; then
  echo "setup: installing torch==$torch_version into $venv (pip, a few GB, first time only)" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "torch==$torch_version"
fi

cuda_headers=(nvidia-cuda-crt==13.0.88 nvidia-cuda-cccl==13.0.85)
if ! "$venv/bin/pip" show -q nvidia-cuda-crt nvidia-cuda-cccl >/dev/null 2>&1; then
  echo "setup: installing the CUDA header wheels ${cuda_headers[*]} into $venv (pip)" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check "${cuda_headers[@]}"
fi

# Deployment checks: `evdet export --format onnx` converts with torch.onnx (needs onnx), and the tests
# run the exported files in Python (torch.jit.load, onnxruntime) on safetensors inputs.
deploy=(numpy==2.4.6 safetensors==0.8.0 onnx==1.23.2 onnxruntime==1.32.0)
if ! "$venv/bin/python" -c "import numpy, safetensors, onnx, onnxruntime" >/dev/null 2>&1; then
  echo "setup: installing ${deploy[*]} into $venv (pip)" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check "${deploy[@]}"
fi

# The README's Python deployment example (run by crates/cli/tests/readme.rs): reads a preprocessed
# sequence's blosc-compressed histograms (h5py + hdf5plugin) and applies torchvision's class-aware NMS.
# torchvision without its dependencies keeps the torch above as it is; it needs pillow to import.
example=(h5py==3.16.0 hdf5plugin==7.1.0 pillow==12.1.0)
if ! "$venv/bin/python" -c "import h5py, hdf5plugin, PIL, torchvision" >/dev/null 2>&1; then
  echo "setup: installing ${example[*]} torchvision==0.26.0 into $venv (pip)" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check "${example[@]}"
  "$venv/bin/pip" install -q --disable-pip-version-check --no-deps torchvision==0.26.0
fi

# HDF5 2.x's CMakeLists needs CMake 3.26; .cargo/config.toml points the build at the `.cmake` link.
if ! "$venv/bin/cmake" --version 2>/dev/null | grep -q "version 3.31.6"; then
  echo "setup: installing cmake==3.31.6 into $venv (pip)" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check "cmake==3.31.6"
fi
if [ "$(readlink "$root/.cmake" 2>/dev/null)" != "$venv/bin/cmake" ]; then
  ln -sfn "$venv/bin/cmake" "$root/.cmake"
fi

torch_dir="$("$venv/bin/python" -c 'import torch, os; print(os.path.dirname(torch.__file__))' 2>/dev/null)"
if [ "$(readlink "$root/.torch" 2>/dev/null)" != "$torch_dir" ]; then
  ln -sfn "$torch_dir" "$root/.torch"
fi
