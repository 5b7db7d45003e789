package collector

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/mira-project/mira/exporter"
	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/ipfix/ipfixtest"
	"github.com/mira-project/mira/tools/peertest"
)

// FuzzServeStream: any byte stream ends in nil or an error, never a panic
// or a hang, and every record handed over came from a counted message.
func FuzzServeStream(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(peertest.CorpusFile(f, "generated"), "*.ipfix"))
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	var buf bytes.Buffer
	e := exporter.NewWriter(&buf, &exporter.Config{ExporterMetadata: true})
	e.Export(ipfixtest.Samples())
	e.Close()
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		n := 0
		c := New(ConsumerFunc(func(_ Origin, recs []flow.Record) { n += len(recs) }), nil)
		c.ServeStream(context.Background(), bytes.NewReader(b), Origin{Transport: "fuzz"})
		st := c.Stats()
		if uint64(n) != st.Records || st.Messages > uint64(len(b)/16) {
			t.Fatalf("%d records handed over, stats %+v", n, st)
		}
	})
}

// TestServeStreamAllocs: decoding allocates per session (templates), not
// per message: a stream twice as long costs no more allocations.
func TestServeStreamAllocs(t *testing.T) {
	var buf bytes.Buffer
	e := exporter.NewWriter(&buf, nil)
	e.Export(ipfixtest.Random(31, 3000))
	e.Close()
	one := buf.Bytes()
	two := append(bytes.Clone(one), one...)
	c := New(ConsumerFunc(func(Origin, []flow.Record) {}), nil)
	run := func(b []byte) float64 {
		return testing.AllocsPerRun(5, func() {
			c.ServeStream(context.Background(), bytes.NewReader(b), Origin{Transport: "file"})
		})
	}
	if a1, a2 := run(one), run(two); a2 > a1 {
		t.Fatalf("%v allocs for one stream, %v for two", a1, a2)
	}
}
