#!/bin/sh
# Model-check tests/model/wake_protocol.pml with spin, as one CTest test.
# usage: run_spin.sh MODEL WORKDIR CC EXPECT MODE [spin -D options...]
#   EXPECT: pass                 -> exit 0 only if pan reports "errors: 0" and a complete search
#           fail:<pan message>   -> exit 0 only if pan reports an error whose text contains <pan message>
#                                   (so a broken variant must fail for the intended reason)
#   MODE:   safety   -> assertions + invalid end states (a lost wake is a deadlock)
#           liveness -> the ltl property all_done under weak fairness (pan -a -f)
set -eu
model=$1 workdir=$2 cc=$3 expect=$4 mode=$5
shift 5
rm -rf "$workdir" && mkdir -p "$workdir" && cd "$workdir"
cp "$model" model.pml
spin "$@" -a model.pml > spin.log 2>&1 || { cat spin.log; echo "spin -a failed"; exit 1; }
# MEMLIM caps pan at 2 GB on a shared machine; a search cut short by it is reported as a failure below.
case $mode in
  safety)   "$cc" -O2 -DSAFETY -DNOCLAIM -DCOLLAPSE -DMEMLIM=2048 -o pan pan.c; flags="-m200000" ;;
  liveness) "$cc" -O2 -DCOLLAPSE -DMEMLIM=2048 -o pan pan.c; flags="-a -f -m200000" ;;
  *) echo "unknown mode $mode"; exit 1 ;;
esac
# pan exits 0 even when it finds an error: judge by its report.
./pan $flags > pan.log 2>&1 || true
cat pan.log
errors=$(sed -n 's/.*errors: \([0-9][0-9]*\).*/\1/p' pan.log | head -n 1)
[ -n "$errors" ] || { echo "FAIL: no verdict from pan"; exit 1; }
case $expect in
  pass)
    if [ "$errors" != 0 ]; then
      spin -t -p -g "$@" model.pml | tail -n 60 || true
      echo "FAIL: spin found an error in the wake protocol (trail above)"; exit 1
    fi
    if grep -q -e "Search not completed" -e "out of memory" pan.log; then
      echo "FAIL: the search did not complete, so nothing is proven"; exit 1
    fi
    echo "OK: no error in the full state space" ;;
  fail:*)
    want=${expect#fail:}
    if [ "$errors" = 0 ]; then echo "FAIL: spin did not find the planted bug"; exit 1; fi
    grep -q -e "$want" pan.log || { echo "FAIL: spin found an error, but not \"$want\""; exit 1; }
    echo "OK: spin found the planted bug ($want)" ;;
  *) echo "unknown expectation $expect"; exit 1 ;;
esac
