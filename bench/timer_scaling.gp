# Timer cost (arm + cancel one timer) against the number of pending timers, per library.
# Called by bench/run.sh with: gnuplot -e "datafile='...'; outfile='...'" bench/timer_scaling.gp
# datafile: pending, then for floor, tinyloop, libev, libuv: latest_instr latest_ns mid_instr mid_ns
set terminal pngcairo size 1200,900 font ",10"
set output outfile
set datafile missing "-"
set multiplot layout 2,2 title "Timer scaling: arm + cancel one timer with N pending timers"
set logscale x 10
set xrange [500:2000000]
set xlabel "pending timers"
set key top left
set grid
set format x "10^{%L}"
set yrange [0:*]
# column of library k (0..3), measure m (0 latest_instr, 1 latest_ns, 2 mid_instr, 3 mid_ns)
c(k, m) = 2 + 4 * k + m
do for [m in "0 2 1 3"] {
  mm = int(m)
  set title (mm % 2 == 0 ? "instructions per op (callgrind)" : "wall clock per op, ns (median)") . \
            (mm < 2 ? " - deadline after all pending" : " - deadline in the middle")
  set ylabel (mm % 2 == 0 ? "user-space instructions" : "ns")
  plot datafile using 1:c(0, mm) with linespoints lw 2 pt 7 title "floor (hand-written epoll)", \
       ''       using 1:c(1, mm) with linespoints lw 2 pt 5 title "tinyloop", \
       ''       using 1:c(2, mm) with linespoints lw 2 pt 9 title "libev", \
       ''       using 1:c(3, mm) with linespoints lw 2 pt 11 title "libuv"
}
unset multiplot
