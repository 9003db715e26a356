#!/usr/bin/env bash
# Installs the Python client with its test dependencies in clients/python/.venv (made if
# missing), type-checks it with mypy --strict and runs its tests against a real jobcast-local.
#
#   clients/python/test.sh [pytest args...]
#
# JOBCAST_LOCAL_BIN names the jobcast-local binary (default: the repository's
# target/tests/jobcast-local as the test command builds it, else target/debug/jobcast-local, else
# target/release/jobcast-local). Without one the end-to-end
# tests are skipped, unless JOBCAST_LOCAL_REQUIRED=1, which makes that a failure.
# PYTHON picks the interpreter that makes the venv (default: python3; 3.11 or newer).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

venv="$here/.venv"
if [[ ! -x "$venv/bin/python" ]]; then
  python="${PYTHON:-python3}"
  # The package runs on 3.10+; its pinned test tools (websockets 17) need 3.11+.
  if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "test.sh needs Python 3.11 or newer as \$PYTHON or python3 (found: $("$python" --version 2>&1))" >&2
    exit 1
  fi
  if ! "$python" -m venv "$venv"; then
    rm -rf "$venv"
    echo "could not make a venv (on Debian/Ubuntu: apt-get install python3-venv)" >&2
    exit 1
  fi
fi
py="$venv/bin/python"

# Reinstall only when what is installed may differ from what is asked for.
stamp="$venv/.jobcast-installed"
want="$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  echo "installing jobcast[test] into $venv" >&2
  PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_CONSTRAINT="$here/constraints.txt" \
    "$py" -m pip install --quiet -e '.[test]'
  echo "$want" > "$stamp"
fi

echo "mypy --strict (src/jobcast, tests)" >&2
"$py" -m mypy --strict --cache-dir "$here/.mypy_cache"

"$py" -m pytest -p no:cacheprovider "$@"
