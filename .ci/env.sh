# Creates or reuses the project venv in a cache outside the clone, and points it at this checkout.
#   source .ci/env.sh test   # with the [test] extras (CI)
#   source .ci/env.sh lab    # runtime deps + ipykernel (notebooks)
# Afterwards VENV is set and $VENV/bin is first on PATH. Run directly, it just prints VENV.
# The cache key is a hash of pyproject.toml, binder/constraints.txt, the flavour and the Python,
# so a change to any of them builds a new venv; a venv counts only once its marker file exists.

# pip, quiet: its output (setuptools warnings, this machine's index notices) only on failure
_cnnw_pip() {
  local log rc=0
  log="$(mktemp /tmp/cnnw-pip.XXXXXX)"
  "$VENV/bin/pip" install -q "$@" >"$log" 2>&1 || rc=$?
  [[ $rc -eq 0 ]] || cat "$log" >&2
  rm -f "$log"
  return "$rc"
}

_cnnw_env() {
  local flavour="${1:-test}" root cache key lock marker fd
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  local constraints="$root/binder/constraints.txt"
  local -a spec
  case "$flavour" in
    test) spec=(-e "$root[test]") ;;
    lab) spec=(-e "$root" ipykernel) ;;
    *) echo "env.sh: unknown flavour '$flavour' (test|lab)" >&2; return 2 ;;
  esac

  python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || { echo "env.sh: needs Python >= 3.10 as python3" >&2; return 1; }
  cache="${CNN_WIDGETS_VENV_CACHE:-$HOME/.cache/cnn_widgets/venvs}"
  key="$( { cat "$root/pyproject.toml" "$constraints"; echo "$flavour"; python3 -VV; } \
          | sha256sum | cut -c1-12)"
  VENV="$cache/$flavour-$key"
  marker="$VENV/.cnnw-complete"
  # keep pip's own cache out of ~/.cache/pip
  export PIP_CACHE_DIR="${PIP_CACHE_DIR:-$HOME/.cache/cnn_widgets/pip}"
  mkdir -p "$cache"

  # One builder at a time per venv; a half-built venv (no marker) is thrown away and rebuilt.
  lock="$VENV.lock"
  exec {fd}>"$lock"
  flock "$fd"
  if [[ -f "$marker" ]]; then
    echo "[env] reusing $VENV" >&2
  else
    echo "[env] building $VENV (torch alone is ~1 min and ~5 GB)" >&2
    local t0=$SECONDS
    rm -rf "$VENV"
    python3 -m venv "$VENV" &&
    _cnnw_pip -U pip "setuptools>=77" wheel &&
    echo "[env] torch, torchvision" >&2 &&
    # torch first, alone: the pins come from the constraints file
    _cnnw_pip -c "$constraints" torch torchvision &&
    echo "[env] cnn_widgets ($flavour) and its dependencies" >&2 &&
    _cnnw_pip -c "$constraints" "${spec[@]}" &&
    touch "$marker" ||
    { echo "[env] install failed; $VENV is left incomplete and will be rebuilt" >&2
      flock -u "$fd"; exec {fd}>&-; return 1; }
    echo "[env] built in $((SECONDS - t0)) s" >&2
  fi
  # The venv may be shared by several clones: make it import this one.
  _cnnw_pip --no-deps --no-build-isolation -e "$root" \
    || { flock -u "$fd"; exec {fd}>&-; return 1; }
  flock -u "$fd"
  exec {fd}>&-

  export VENV VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH"
  echo "[env] $("$VENV/bin/python" -c 'import cnn_widgets, torch; print("cnn_widgets from", cnn_widgets.__file__, "| torch", torch.__version__)')" >&2
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  _cnnw_env "$@"
  echo "$VENV"
else
  _cnnw_env "$@"
fi
