package probe

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/mira-project/mira/agent"
	"github.com/mira-project/mira/appliance/config"
	"github.com/mira-project/mira/drivers"
	"github.com/mira-project/mira/drivers/pcapfile"
	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/synth"
)

// synthSource returns the synthesised default capture as a capture
// source named "sample".
func synthSource(t *testing.T) *pcapfile.Reader {
	t.Helper()
	var buf bytes.Buffer
	if _, err := synth.WritePcap(synth.Default(), &buf); err != nil {
		t.Fatal(err)
	}
	r, err := pcapfile.NewReader(bytes.NewReader(buf.Bytes()), "sample")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestMetricsServePipelineCounters scrapes /metrics mid-capture and checks
// the values are the pipeline's own counters.
func TestMetricsServePipelineCounters(t *testing.T) {
	r := synthSource(t)
	g := &gatedSource{Source: r, pause: 5000, paused: make(chan struct{}), release: make(chan struct{})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg, err := config.ParseProbe("test.yaml", []byte("metrics: {listen: \""+addr+"\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	p := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Sources: []drivers.Source{g}, Exporters: []Exporter{nopExporter{}}})
	done := make(chan error, 1)
	go func() { done <- p.Run(context.Background()) }()
	<-g.paused
	st := p.Pipeline().Stats()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	vals := map[string]uint64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, v, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err == nil {
			vals[name] = uint64(f)
		}
	}
	resp.Body.Close()
	if st.Packets == 0 {
		t.Fatal("nothing published mid-capture")
	}
	if got := vals["mira_probe_regulation_state"]; got != agent.RegulationNormal {
		t.Errorf("mira_probe_regulation_state = %d unregulated, want miraRegulationState normal(%d)", got, agent.RegulationNormal)
	}
	for name, want := range map[string]uint64{
		"mira_probe_packets_total":                st.Packets,
		"mira_probe_flows_created_total":          st.Meter.Created,
		"mira_probe_flows_active":                 st.Meter.Active,
		"mira_probe_decoded_packets_total":        st.Decoded,
		`mira_probe_loss_total{stage="eviction"}`: st.Meter.Expired[flow.EndResource],
		`mira_probe_loss_total{stage="queue"}`:    st.QueueDrops,
		`mira_probe_loss_total{stage="store"}`:    0,
		// numbered as the MIB's miraRegulationState (1 normal), so one
		// number means one state whichever way it is read
		"mira_probe_regulation_state": uint64(p.pipelineState(&st).RegulationState),
	} {
		if got, ok := vals[name]; !ok || got != want {
			t.Errorf("%s = %d (present %v), pipeline says %d", name, got, ok, want)
		}
	}
	close(g.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestLossCountsEvictions runs a probe whose flow table is too small for
// the capture and checks the ledger's eviction stage is the meter's count
// of flows ended for want of resources.
func TestLossCountsEvictions(t *testing.T) {
	r := synthSource(t)
	cfg, err := config.ParseProbe("test.yaml", []byte("meter: {max_flows: 8}\n"))
	if err != nil {
		t.Fatal(err)
	}
	p := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Sources: []drivers.Source{r}, Exporters: []Exporter{nopExporter{}}})
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := p.Pipeline().Stats()
	l := p.Loss()
	if l.Eviction == 0 || l.Eviction != st.Meter.Expired[flow.EndResource] {
		t.Fatalf("loss eviction = %d, meter evicted %d (want equal, > 0)", l.Eviction, st.Meter.Expired[flow.EndResource])
	}
}
