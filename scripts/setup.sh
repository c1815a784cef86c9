#!/usr/bin/env bash
# Installs what evdet needs on a fresh Debian machine with Rust, gcc and Python 3.11, and does nothing
# when it is already there: HDF5 (Debian's libhdf5-dev; blosc is built by the hdf5-metno crate), and the
# PyPI wheel torch==2.11.0 whose libtorch tch 0.24 links against (in $EVDET_VENV, shared by every clone).
# Also makes the repository's `.torch` link that .cargo/config.toml points tch at.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${EVDET_VENV:-$HOME/.evdet/venv}"
torch_version="2.11.0"

need_apt=()
dpkg -s libhdf5-dev >/dev/null 2>&1 || need_apt+=(libhdf5-dev)
dpkg -s pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
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

torch_dir="$("$venv/bin/python" -c 'import torch, os; print(os.path.dirname(torch.__file__))' 2>/dev/null)"
if [ "$(readlink "$root/.torch" 2>/dev/null)" != "$torch_dir" ]; then
  ln -sfn "$torch_dir" "$root/.torch"
fi
