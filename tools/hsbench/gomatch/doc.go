// Command gomatch is the Go side of the matcher benchmark: it generates the
// shared workload files and runs MIRA's symptom matcher over them the way
// hsbench runs vectorscan.
//
//	gomatch -gen DIR                       # patterns-100.txt, patterns-1000.txt, patterns-5000.txt, corpus.bin
//	gomatch -patterns P -corpus C -chunk N -runs R
package main
