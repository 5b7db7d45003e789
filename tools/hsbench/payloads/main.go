// Command payloads writes the payloads that mira-probe's symptom scan
// reads in a capture (the limit measurement of issue 13 goal 1): every
// UDP and other datagram payload, and every TCP segment's payload up to
// the TLS bypass (a direction stops at its first TLS application-data
// record, as symptom.DB.Encrypted and DB.TLSAppDataAt stop it after a
// handshake), as length-prefixed records (4-byte little-endian length,
// then the bytes) for `hsbench PATTERNS CORPUS lp RUNS`. With -patterns
// it also writes the default symptom database's literal patterns
// (content and hex; validators, masks and regexes left out, windows and
// start anchors dropped) in hsbench's format: vectorscan then does less
// than the probe's matcher, so its time is a lower bound on any scan of
// these payloads.
//
// With -scan it instead scans such a corpus with the default database,
// each record as one block (a fresh State at stream offset 0, as
// hsbench's block mode), and prints the thread CPU time of the best of
// three runs.
//
//	payloads -r TRACE -o CORPUS [-patterns FILE]
//	payloads -scan CORPUS
package main

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"runtime"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mira-project/mira/appliance/decode"
	"github.com/mira-project/mira/appliance/symptom"
	"github.com/mira-project/mira/drivers/pcapfile"
)

type dir struct {
	src, dst     netip.Addr
	sport, dport uint16
}

func main() {
	in := flag.String("r", "", "capture file")
	out := flag.String("o", "", "corpus file to write")
	pats := flag.String("patterns", "", "also write the default database's literal patterns here")
	scan := flag.String("scan", "", "scan this corpus with the default database and print the CPU time")
	flag.Parse()
	if *scan != "" {
		if err := scanCorpus(*scan); err != nil {
			fmt.Fprintln(os.Stderr, "payloads:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*in, *out, *pats); err != nil {
		fmt.Fprintln(os.Stderr, "payloads:", err)
		os.Exit(1)
	}
}

func run(in, out, pats string) error {
	if pats != "" {
		if err := writePatterns(pats); err != nil {
			return err
		}
	}
	r, err := pcapfile.Open(in)
	if err != nil {
		return err
	}
	defer r.Close()
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	dec := decode.New(nil)
	bypassed := map[dir]bool{}
	var pkt decode.Packet
	var n, bytes, tcpBytes, udpBytes uint64
	emit := func(p []byte, tcp bool) {
		if len(p) == 0 {
			return
		}
		var h [4]byte
		binary.LittleEndian.PutUint32(h[:], uint32(len(p)))
		w.Write(h[:])
		w.Write(p)
		n++
		bytes += uint64(len(p))
		if tcp {
			tcpBytes += uint64(len(p))
		} else {
			udpBytes += uint64(len(p))
		}
	}
	for {
		data, ci, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if dec.Decode(data, ci, &pkt) != nil || pkt.LaterFragment {
			continue
		}
		pl := pkt.Payload
		if pkt.Proto != 6 {
			emit(pl, false)
			continue
		}
		d := dir{pkt.Src, pkt.Dst, pkt.Sport, pkt.Dport}
		if len(pl) == 0 || bypassed[d] {
			continue
		}
		if len(pl) >= 5 && pl[0] == 0x17 && pl[1] == 3 && pl[2] <= 4 {
			bypassed[d] = true
			continue
		}
		if len(pl) >= 5 && pl[0] >= 20 && pl[0] <= 22 && pl[1] == 3 {
			if k := tlsAppDataAt(pl); k > 0 {
				emit(pl[:k], true)
				bypassed[d] = true
				continue
			}
		}
		emit(pl, true)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Printf("payloads=%d bytes=%d tcp_bytes=%d other_bytes=%d\n", n, bytes, tcpBytes, udpBytes)
	return f.Close()
}

// tlsAppDataAt is symptom.DB.TLSAppDataAt for a database with tls_bypass.
func tlsAppDataAt(p []byte) int {
	for i := 0; i+5 <= len(p); {
		t := p[i]
		if t < 20 || t > 23 || p[i+1] != 3 || p[i+2] > 4 {
			return -1
		}
		if t == 23 {
			return i
		}
		i += 5 + (int(p[i+3])<<8 | int(p[i+4]))
	}
	return -1
}

// writePatterns writes the default database's literal patterns as
// "kind<TAB>hex" lines (hsbench's format).
func writePatterns(path string) error {
	spec, err := symptom.ParseSpec("default.yaml", symptom.DefaultYAML())
	if err != nil {
		return err
	}
	var b []byte
	k := 0
	for _, s := range spec.Symptoms {
		for _, p := range s.Patterns {
			if p.Kind != symptom.KindLiteral {
				continue
			}
			kind := "lit"
			switch {
			case p.Anchor == symptom.AnchorLine:
				kind = "bol"
			case p.NoCase:
				kind = "nocase"
			}
			b = fmt.Appendf(b, "%s\t%s\n", kind, hex.EncodeToString(p.Bytes))
			k++
		}
	}
	fmt.Fprintf(os.Stderr, "%d literal patterns\n", k)
	return os.WriteFile(path, b, 0o644)
}

func scanCorpus(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var recs [][]byte
	var total int
	for off := 0; off+4 <= len(data); {
		l := int(binary.LittleEndian.Uint32(data[off:]))
		if off+4+l > len(data) {
			return fmt.Errorf("%s: record at %d overruns the file", path, off)
		}
		recs = append(recs, data[off+4:off+4+l])
		total += l
		off += 4 + l
	}
	runtime.LockOSThread()
	db := symptom.Default()
	best := time.Duration(1 << 62)
	var occ uint64
	for r := 0; r < 3; r++ {
		t0 := threadCPU()
		occ = 0
		for _, p := range recs {
			var st symptom.State
			var c symptom.Counts
			db.Scan(&st, &c, p, 0)
			occ += c.Total()
		}
		best = min(best, threadCPU()-t0)
	}
	fmt.Printf("blocks=%d bytes=%d occurrences=%d cpu_s=%.3f\n", len(recs), total, occ, best.Seconds())
	return nil
}

func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		panic(err)
	}
	return time.Duration(ts.Nano())
}
