#!/usr/bin/env bash
# The project's test command: every check, then the tests. Extra arguments go to pytest.
# Run scripts/setup.sh first. Stops at the first step that fails.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
py=.venv/bin/python
if [[ ! -x "$py" ]]; then
    printf 'test: error: %s not found; run scripts/setup.sh first\n' "$py" >&2
    exit 1
fi

step() { printf '\n==> %s\n' "$*"; }

step "generated code is current: python -m tools codegen --check"
"$py" -m tools codegen --check

step "lint: ruff check ."
"$py" -m ruff check .

step "types: mypy"
"$py" -m mypy

step "import rules: lint-imports"
.venv/bin/lint-imports

# The tests run on every core (pytest-xdist; TEST_WORKERS=0 runs them in this process), each test file
# on one worker so that a file's module-wide fixtures are made once.
workers="${TEST_WORKERS:-auto}"
step "tests: python -m pytest -n $workers --dist loadfile $*"
"$py" -m pytest -n "$workers" --dist loadfile "$@"
