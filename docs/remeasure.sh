#!/usr/bin/env bash
# Re-measure the smoke and multilingual smoke tables with the fair evaluation, from a committed clone.
set -u
HERE=$(cd "$(dirname "$0")/.." && pwd)
CLONE=${CLONE:-$HERE/../remeasure}
cd "$CLONE"
export PYTHONPATH="$CLONE" PYTHONHASHSEED=0
PY=$HERE/.venv/bin/python
echo "commit $(git rev-parse HEAD)"
python_ok=$($PY -c "import aunet_lab; print(aunet_lab.__file__)"); echo "package: $python_ok"
start=$(date +%s.%N)
$PY -m aunet_lab.cli demo > logs/demo.log 2>&1; echo "demo rc=$? seconds=$(echo "$(date +%s.%N) - $start" | bc)"
for s in crosslingual-transfer-smoke lowresource-smoke scripts-smoke scripts-ui-smoke; do
  start=$(date +%s.%N)
  $PY -m aunet_lab.cli sweep studies/$s.yaml --workers 2 > logs/$s.log 2>&1
  echo "$s sweep rc=$? seconds=$(echo "$(date +%s.%N) - $start" | bc)"
  $PY -m aunet_lab.cli report $s > logs/$s-report.log 2>&1; echo "$s report rc=$?"
done
echo finished
