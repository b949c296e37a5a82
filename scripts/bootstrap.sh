#!/usr/bin/env bash
# Installs monai-attn and everything it needs, then runs one job.
#
#   bash scripts/bootstrap.sh install # install only
#   bash scripts/bootstrap.sh demo    # install, then run the end-to-end demo
#   bash scripts/bootstrap.sh test    # install, then run the test suite
#
# Environment: inside an active virtualenv or conda env, that environment is used as it is;
# otherwise a virtualenv is created in .venv/. An installed torch (e.g. a CUDA build) is kept;
# only when torch is absent is torch==2.13.0 installed. Re-running skips the install when
# pyproject.toml has not changed since the last successful one. Each install step prints a
# line when it starts and when it ends; the last line says how to put `monai-attn` on PATH.
set -euo pipefail

job="${1:-demo}"
shift || true
case "$job" in
    install|demo|test) ;;
    *) echo "error: unknown job '$job' (expected 'install', 'demo' or 'test')" >&2; exit 2 ;;
esac
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

step() {  # step LABEL DESCRIPTION COMMAND...: print, run, print the time it took
    local label="$1" what="$2"
    shift 2
    local start=$SECONDS
    echo "[$label] $what ..."
    "$@"
    echo "[$label] done in $((SECONDS - start)) s"
}

if [[ -n "${VIRTUAL_ENV:-}" || -n "${CONDA_PREFIX:-}" ]]; then
    py="$(command -v python)"
    activate=""
else
    base_py="${PYTHON:-python3}"
    if ! "$base_py" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
        echo "error: $base_py is $("$base_py" -V 2>&1); monai-attn needs Python 3.10 or newer" >&2
        exit 1
    fi
    if [[ ! -x .venv/bin/python ]]; then
        step venv "creating the virtual environment .venv/" "$base_py" -m venv .venv
    fi
    py="$root/.venv/bin/python"
    activate="source .venv/bin/activate"
fi

stamp="$("$py" -c 'import sys; print(sys.prefix)')/.monai_attn_installed"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    echo "installing monai-attn into $("$py" -c 'import sys; print(sys.prefix)') (a few minutes on first run)"
    step 1/4 "upgrading pip" "$py" -m pip install --quiet --upgrade pip
    if ! "$py" -c 'import torch' 2>/dev/null; then
        step 2/4 "installing torch==2.13.0 (the largest download)" \
            "$py" -m pip install --quiet --progress-bar on "torch==2.13.0"
    else
        echo "[2/4] torch $("$py" -c 'import torch; print(torch.__version__)') is installed; keeping it"
    fi
    # setuptools warns on every editable install of a package whose data folders are mapped from
    # the checkout (bundles/, datasets/), which is this layout by design: that one note is muted.
    step 3/4 "installing monai-attn with MONAI, highdicom, ignite and the test tools" \
        env PYTHONWARNINGS="ignore:Editable installation" "$py" -m pip install --quiet -e ".[test]"
    step 4/4 "checking the installation" "$py" -m monai_attn.cli --help >/dev/null
    echo "$want" > "$stamp"
else
    echo "monai-attn is installed and up to date in $("$py" -c 'import sys; print(sys.prefix)')"
fi

status=0
case "$job" in
    demo) "$py" -m monai_attn.cli demo "$@" || status=$? ;;
    test) "$py" -m pytest "$@" || status=$? ;;
esac

if [[ -n "$activate" ]]; then
    echo "To use monai-attn and python -m monai.bundle in this shell, run:"
    echo "    $activate"
else
    echo "monai-attn is installed in the active environment; the commands in README.md run as shown."
fi
exit "$status"
