// Command mibgen generates Go constants from a MIB module:
//
//	mibgen -in MIRA-PROBE-MIB.txt -out oids_gen.go -pkg mib
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/mira-project/mira/mib/internal/smi"
)

func main() {
	in := flag.String("in", "", "MIB file")
	out := flag.String("out", "", "Go file to write")
	pkg := flag.String("pkg", "mib", "Go package name")
	flag.Parse()
	if err := run(*in, *out, *pkg); err != nil {
		fmt.Fprintln(os.Stderr, "mibgen:", err)
		os.Exit(1)
	}
}

func run(in, out, pkg string) error {
	src, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	m, err := smi.Parse(in, src)
	if err != nil {
		return err
	}
	code, err := smi.Generate(m, pkg, filepath.Base(in))
	if err != nil {
		return err
	}
	return os.WriteFile(out, code, 0o644)
}
