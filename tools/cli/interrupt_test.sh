#!/bin/sh
# SIGTERM during `dsv4 quantize`: the run stops with exit code 130 and leaves neither the output
# nor a temporary file. Usage: interrupt_test.sh DSV4 MODEL.gguf SCRATCH_DIR
set -u
dsv4=$1 model=$2 dir=$3
rm -rf "$dir" && mkdir -p "$dir" || exit 1
# Q2_K on one thread: the slowest recipe, long enough for the signal to land mid-run
"$dsv4" quantize "$model" "$dir/out.gguf" Q2_K -t 1 -q 2>"$dir/stderr" &
pid=$!
# wait until the run writes (its temporary file exists), then send SIGTERM
i=0
while [ -z "$(ls -A "$dir" | grep '^\.out\.gguf\.tmp-' || true)" ]; do
  i=$((i + 1))
  if [ $i -gt 3000 ] || ! kill -0 $pid 2>/dev/null; then
    echo "the run ended before it could be interrupted"; exit 1
  fi
  sleep 0.01
done
kill -TERM $pid
wait $pid
rc=$?
echo "exit code $rc; stderr: $(cat "$dir/stderr")"
[ $rc -eq 130 ] || exit 1
grep -q '^dsv4: interrupted: .*out.gguf was not written$' "$dir/stderr" || exit 1
left=$(ls -A "$dir" | grep -v '^stderr$' || true)
[ -z "$left" ] || { echo "left behind: $left"; exit 1; }
