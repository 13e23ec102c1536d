# Sourced by bin/serve and bin/test: finds uv, or installs it from PyPI into a private
# virtualenv (.tools/), so a fresh machine needs nothing but Python 3.11+.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if command -v uv >/dev/null 2>&1; then
    UV=$(command -v uv)
elif [ -x .tools/bin/uv ]; then
    UV=.tools/bin/uv
else
    PYTHON=$(command -v python3 || command -v python || true)
    if [ -z "$PYTHON" ]; then
        echo "ragsite needs Python 3.11 or newer on PATH." >&2
        exit 1
    fi
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
        echo "ragsite needs Python 3.11 or newer (found $("$PYTHON" --version))." >&2
        exit 1
    }
    echo "Installing uv from PyPI into .tools/ ..."
    "$PYTHON" -m venv .tools
    .tools/bin/python -m pip install --quiet --disable-pip-version-check uv
    UV=.tools/bin/uv
fi
export UV
