#!/usr/bin/env bash
# Set up (or bring up to date) the project's virtualenv in .venv/ with the project installed
# editable, dev extras included. Idempotent: a second run with an unchanged pyproject.toml is quick.
#
# The interpreter is found without help: $PYTHON if set, then python3.13, python3.12, python3 on
# PATH, then pyenv installs. It must be CPython >= 3.12.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo_root=$(pwd)
venv="$repo_root/.venv"
stamp="$venv/.aeron-cluster-py-setup.sha256"

say() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# True when "$1" runs and is Python >= 3.12.
is_py312() {
    [[ -n "$1" ]] && "$1" -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1
}

find_python() {
    local candidate
    if [[ -n "${PYTHON:-}" ]]; then
        if is_py312 "$PYTHON"; then
            printf '%s\n' "$PYTHON"
            return 0
        fi
        say "\$PYTHON=$PYTHON is not a working Python >= 3.12; looking for another"
    fi
    for candidate in python3.13 python3.12 python3; do
        # pyenv shims exist for versions that are not selected; is_py312 rejects those too.
        if command -v "$candidate" >/dev/null 2>&1 && is_py312 "$candidate"; then
            command -v "$candidate"
            return 0
        fi
    done
    local -a roots=()
    [[ -n "${PYENV_ROOT:-}" ]] && roots+=("$PYENV_ROOT")
    [[ -n "${HOME:-}" ]] && roots+=("$HOME/.pyenv")
    roots+=("/root/.pyenv")
    local root
    shopt -s nullglob
    for root in "${roots[@]}"; do
        for candidate in "$root"/versions/3.1[2-9]*/bin/python; do
            if is_py312 "$candidate"; then
                shopt -u nullglob
                printf '%s\n' "$candidate"
                return 0
            fi
        done
    done
    shopt -u nullglob
    if command -v pyenv >/dev/null 2>&1; then
        for candidate in python3.12 python3.13; do
            candidate=$(pyenv which "$candidate" 2>/dev/null || true)
            if is_py312 "$candidate"; then
                printf '%s\n' "$candidate"
                return 0
            fi
        done
    fi
    return 1
}

python_version() {
    "$1" -c 'import platform; print(platform.python_version())'
}

# 1. The virtualenv, on a Python >= 3.12.
if [[ -e "$venv" ]] && ! is_py312 "$venv/bin/python"; then
    say "existing .venv is broken or older than Python 3.12; recreating it"
    rm -rf "$venv"
fi
if [[ ! -e "$venv/bin/python" ]]; then
    base_python=$(find_python) || die "no Python >= 3.12 found (tried \$PYTHON, python3.13, python3.12,\
 python3, ~/.pyenv/versions/3.1x, /root/.pyenv/versions/3.1x, pyenv which python3.12).\
 Install one, or set PYTHON=/path/to/python3.12"
    say "creating .venv with $base_python (Python $(python_version "$base_python"))"
    rm -rf "$venv"
    "$base_python" -m venv "$venv"
    rm -f "$stamp"
fi
py="$venv/bin/python"

# 2. The project and its dev tools, skipped when pyproject.toml has not changed since the last install.
want=$("$py" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' \
    "$repo_root/pyproject.toml")
have=$(cat "$stamp" 2>/dev/null || true)
if [[ "$want" == "$have" ]] && "$py" -c 'import importlib.metadata as m; m.distribution("aeron-cluster-py")' \
    >/dev/null 2>&1; then
    say ".venv is up to date (Python $(python_version "$py")); nothing to install"
    exit 0
fi

say "upgrading pip"
"$py" -m pip install --quiet --upgrade pip
say "installing the project editable with dev extras (pip install -e '.[dev]')"
rm -f "$stamp"
"$py" -m pip install --quiet --editable "$repo_root[dev]"
printf '%s\n' "$want" >"$stamp"
say "done: .venv ready (Python $(python_version "$py"))"
