# Timer cost (arm + cancel one timer) against the number of pending timers, per library.
# Called by bench/run.sh with: gnuplot -e "datafile='...'; outfile='...'" bench/timer_scaling.gp
# datafile columns: pending  then (instructions, ns) for floor, tinyloop, libev, libuv
set terminal pngcairo size 1200,480 font ",11"
set output outfile
set datafile missing "-"
set multiplot layout 1,2 title "TimerScaling: arm + cancel one timer with N pending"
set logscale x 10
set xrange [500:2000000]
set xlabel "pending timers"
set key top left
set grid
set format x "10^{%L}"
set ylabel "user-space instructions per op (callgrind)"
set yrange [0:*]
plot datafile using 1:2 with linespoints lw 2 pt 7 title "floor (epoll, hand-written)", \
     ''       using 1:4 with linespoints lw 2 pt 5 title "tinyloop", \
     ''       using 1:6 with linespoints lw 2 pt 9 title "libev", \
     ''       using 1:8 with linespoints lw 2 pt 11 title "libuv"
set ylabel "wall clock per op, ns (median)"
plot datafile using 1:3 with linespoints lw 2 pt 7 title "floor (epoll, hand-written)", \
     ''       using 1:5 with linespoints lw 2 pt 5 title "tinyloop", \
     ''       using 1:7 with linespoints lw 2 pt 9 title "libev", \
     ''       using 1:9 with linespoints lw 2 pt 11 title "libuv"
unset multiplot
