#!/usr/bin/env bash
# Installs monai-attn and everything it needs, then runs one job.
#
#   bash scripts/bootstrap.sh demo    # install, then run the end-to-end demo
#   bash scripts/bootstrap.sh test    # install, then run the test suite
#
# Environment: inside an active virtualenv or conda env, that environment is used as it is;
# otherwise a virtualenv is created in .venv/. An installed torch (e.g. a CUDA build) is kept;
# only when torch is absent is torch==2.13.0 installed. Re-running skips the install when
# pyproject.toml has not changed since the last successful one.
set -euo pipefail

job="${1:-demo}"
shift || true
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if [[ -n "${VIRTUAL_ENV:-}" || -n "${CONDA_PREFIX:-}" ]]; then
    py="$(command -v python)"
else
    base_py="${PYTHON:-python3}"
    if ! "$base_py" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
        echo "error: $base_py is $("$base_py" -V 2>&1); monai-attn needs Python 3.10 or newer" >&2
        exit 1
    fi
    [[ -x .venv/bin/python ]] || "$base_py" -m venv .venv
    py="$root/.venv/bin/python"
fi

stamp="$("$py" -c 'import sys; print(sys.prefix)')/.monai_attn_installed"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    "$py" -m pip install --quiet --upgrade pip
    if ! "$py" -c 'import torch' 2>/dev/null; then
        "$py" -m pip install --quiet "torch==2.13.0"
    fi
    "$py" -m pip install --quiet -e ".[test]"
    echo "$want" > "$stamp"
fi

case "$job" in
    demo) exec "$py" -m monai_attn.cli demo "$@" ;;
    test) exec "$py" -m pytest "$@" ;;
    *) echo "error: unknown job '$job' (expected 'demo' or 'test')" >&2; exit 2 ;;
esac
