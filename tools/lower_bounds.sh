#!/usr/bin/env bash
# The declared dependency range really works: install every `>=` lower bound of pyproject.toml's
# [project] dependencies, pinned with `==`, into a separate venv (.venv-lower) and run the model-family,
# loading and store tests there. `make lower-bounds` calls this; it is not part of `make test`.
#
# torch is the exception: it is pinned to 2.13.0, the CPU build on this machine's disk. Any other torch
# from PyPI pulls several GB of CUDA packages, and the CPU-only index (download.pytorch.org) is not
# reachable from the dev machines, so the torch lower bound is not checked here (see docs/dependencies.md).
# Override with LOWER_TORCH=... on a machine that can install another torch.
#
# The venv is rebuilt only when pyproject.toml changes. LOWER_VENV=path picks another venv folder.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${LOWER_VENV:-.venv-lower}
TORCH=${LOWER_TORCH:-2.13.0}
start=$(date +%s)

# pins: each `name>=X` of [project].dependencies as `name==X` (torch as TORCH); the dev extras the tests
# need (pytest, moto, datasets) at their declared ranges, ray left out (no test here uses it).
mapfile -t PINS < <("$PYTHON" - "$TORCH" <<'PY'
import re, sys, tomllib
torch = sys.argv[1]
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
for req in project["dependencies"]:
    m = re.fullmatch(r"\s*([A-Za-z0-9_.\-\[\]]+)\s*>=\s*([^,;\s]+)\s*", req)
    if not m:
        sys.exit(f"lower_bounds: cannot pin '{req}' (expected 'name>=version')")
    name, low = m.groups()
    print(f"torch=={torch}" if name == "torch" else f"{name}=={low}")
for req in project["optional-dependencies"]["dev"]:
    if not req.startswith("ray"):
        print(req)
PY
)
stamp_val=$(printf '%s\n' "${PINS[@]}" | sha256sum | cut -c1-16)
stamp="$VENV/.lower-bounds-$stamp_val"
marker="$VENV/.mstar-lower-bounds-venv"  # written when this script creates the venv
if [ ! -f "$stamp" ]; then
    if [ -e "$VENV" ]; then
        # Rebuilt only if this script made it: never delete a folder we did not create.
        if [ ! -f "$marker" ] && ! compgen -G "$VENV/.lower-bounds-*" > /dev/null; then
            echo "lower-bounds: $VENV exists and was not made by tools/lower_bounds.sh; move it away or set LOWER_VENV" >&2
            exit 2
        fi
        rm -rf "$VENV"
    fi
    "$PYTHON" -m venv "$VENV"
    touch "$marker"
    "$VENV/bin/python" -m pip install --quiet "torch==$TORCH" 2> >(grep -v "^WARNING: Location" >&2)
    echo "lower-bounds: installing ${PINS[*]}"
    "$VENV/bin/python" -m pip install --quiet -e . "${PINS[@]}" 2> >(grep -v "^WARNING: Location" >&2)
    touch "$stamp"
fi
echo "lower-bounds: installed versions"
"$VENV/bin/python" - "${PINS[@]}" <<'PY'
import re, sys
from importlib.metadata import version
for pin in sys.argv[1:]:
    name = re.split(r"[=<>\[]", pin)[0]
    print(f"  {name:<14} {version(name):<12} (asked {pin})")
for name in ("numpy", "huggingface-hub", "lance-namespace", "pandas"):  # resolved, not declared by us
    print(f"  {name:<14} {version(name):<12} (resolved by pip)")
PY
rc=0
"$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/store tests/unit/test_model_families.py \
    tests/unit/test_loading.py || rc=$?
echo "lower-bounds: $([ $rc = 0 ] && echo PASSED || echo FAILED) in $(( $(date +%s) - start )) s"
exit $rc
