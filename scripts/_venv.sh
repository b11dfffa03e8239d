# Sourced by scripts/cc and scripts/test: make .venv with ion installed (editable)
# and its test tools, re-installing only when the packaging files change.
set -eu
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$top/.venv"
python=${PYTHON:-python3}
stamp="$venv/.ion-installed"
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
if [ ! -f "$stamp" ] || [ "$top/pyproject.toml" -nt "$stamp" ] || [ "$top/setup.py" -nt "$stamp" ]; then
    # editable_mode=compat puts the checkout on sys.path with a plain .pth, which
    # Twisted's plugin scan needs to find twisted/plugins/cc_plugin.py.
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        -e "$top[test]" --config-settings editable_mode=compat >&2
    # A regular install precompiles; an editable one does not. Do it here so a
    # container does not compile ion's source at every launch (Python still
    # recompiles, in memory, any file edited since).
    "$venv/bin/python" -m compileall -q "$top/ion" >&2 || true
    touch "$stamp"
fi
export PATH="$venv/bin:$PATH"
cd "$top"
