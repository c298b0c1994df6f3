# Sourced by the scripts: makes `uv` available, installing it from PyPI if needed.
if ! command -v uv >/dev/null 2>&1; then
  python3 -m pip install --quiet --user uv 2>/dev/null || python3 -m pip install --quiet uv
  uv_dir="$(dirname "$(python3 -c 'import uv; print(uv.find_uv_bin())')")"
  export PATH="$uv_dir:$PATH"
fi
