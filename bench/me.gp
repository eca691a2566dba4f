# Requests/s against connections: keygate's GET /api/me and its ceilings.
#   gnuplot -e "datafile='out/me.dat'; outfile='out/me.png'; subtitle='...'" me.gp
# (bench/run does this.) Columns of datafile: connections, keygate /me,
# fcgi_hello, pgbench -S, pgbench token lookup, fcgi_hello with prompt-close.
if (!exists("datafile")) datafile = 'out/me.dat'
if (!exists("outfile")) outfile = 'out/me.png'
if (!exists("subtitle")) subtitle = ''

set terminal pngcairo size 900,600 font "sans,10" noenhanced
set output outfile
set title "GET /api/me and its ceilings\n".subtitle
set xlabel "connections (wrk) / clients (pgbench)"
set ylabel "requests/s (transactions/s for pgbench)"
set logscale x 2
set xtics ("1" 1, "8" 8, "64" 64)
set xrange [0.8:80]
set yrange [0:*]
set format y "%.0f"
set grid ytics
set key below horizontal
set style data linespoints
plot datafile using 1:3 title "transport: fcgi_hello via lighttpd" lw 2 pt 5 dt 2, \
     datafile using 1:6 title "transport: fcgi_hello, prompt close" lw 2 pt 4 dt 2, \
     datafile using 1:4 title "database: pgbench -S" lw 2 pt 7 dt 3, \
     datafile using 1:5 title "database: pgbench token lookup" lw 2 pt 9 dt 4, \
     datafile using 1:2 title "keygate GET /api/me" lw 3 pt 13 lc rgb "#c00000", \
     datafile using 1:2:(sprintf("%.0f", $2)) notitle with labels offset char 0,-1.2 tc rgb "#c00000", \
     datafile using 1:3:(sprintf("%.0f", $3)) notitle with labels offset char 0,1.2 tc rgb "#9400d3"
