#!/bin/sh
# Does attaching/detaching a probe on get_pipe_info while a workload keeps calling it oops the
# TCG guest? $1: bt-kfunc | bt-kprobe | wq-fentry | wq-kprobe; 6 rounds. $2 = noopt: with
# kprobe jump optimisation off. Run: cargo xtask vm --kernel 6.12 -- sh vm/detach-oops.sh bt-kfunc
# (a debug build of wqtrace must exist: cargo build -p wqtrace).
W="$(pwd)/target/debug/wqtrace"  # cargo xtask vm runs in the workspace
uname -r
[ "${2:-}" = noopt ] && echo 0 > /proc/sys/debug/kprobes-optimization && echo "kprobes-optimization=$(cat /proc/sys/debug/kprobes-optimization)"
$W workload contend --threads 3 --duration 900 >/dev/null 2>&1 &
WL=$!
sleep 2
for i in 1 2 3 4 5 6; do
  echo "step: $1 attach $i"
  case $1 in
    bt-kfunc|bt-kprobe)
      p=kfunc:vmlinux:get_pipe_info; [ $1 = bt-kprobe ] && p=kprobe:get_pipe_info
      bpftrace -e "$p { @n = count(); }" >/tmp/bt.out 2>&1 &
      BT=$!
      t=0; until grep -q Attaching /tmp/bt.out || [ $t -ge 120 ]; do sleep 1; t=$((t+1)); done
      echo "step: attached ($(head -1 /tmp/bt.out))"; sleep 2
      echo "step: $1 detach $i"
      kill -INT $BT; wait $BT; tail -1 /tmp/bt.out ;;
    wq-fentry|wq-kprobe)
      m=${1#wq-}
      $W trace --attach $m -d 4 --show-plan 2>&1 >/dev/null | grep -E "get_pipe_info|events" ;;
  esac
  echo "step: $1 round $i done"
done
kill $WL
echo "RESULT: no oops in 6 rounds of $1"
