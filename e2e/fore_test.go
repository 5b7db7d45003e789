package e2e

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mira-project/mira/tools/peertest"
)

// TestForeDeviceEndToEnd runs the ATM path through the real kernel: a
// FUSE-served Fore-style capture device (fatmsim) carries a corpus capture
// segmented into cells on two VCs; mira-probe captures it with a VPI/VCI
// filter and exports to mira-collector. Each VC's run must report only
// flows on that VC, and the two runs together exactly the flows of reading
// the capture file directly.
func TestForeDeviceEndToEnd(t *testing.T) {
	peertest.FUSE(t) // fatmsim mounts its device
	pcap := peertest.CorpusFile(t, "pcaps", "ndpi", "1kxun.pcap")
	sim := filepath.Join(t.TempDir(), "fatmsim")
	if out, err := exec.Command("go", "build", "-o", sim, "../drivers/fore/cmd/fatmsim").CombinedOutput(); err != nil {
		t.Fatalf("go build fatmsim: %v\n%s", err, out)
	}

	// Reference: the file read directly.
	ref := startCollector(t, false, true)
	runProbe(t, "-r", pcap, "--export", "tcp://"+ref.tcp)
	ref.p.terminate(t, 20*time.Second)
	want, _ := storeFlows(t, ref.db)
	if len(want) == 0 {
		t.Fatal("reference run stored no flows")
	}

	coll := startCollector(t, false, true)
	for _, vc := range []string{"1/100", "1/101"} {
		dir := t.TempDir()
		cmd := exec.Command(sim, "-dir", dir, "-vcs", "1/100,1/101", pcap)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		dev, err := bufio.NewReader(stdout).ReadString('\n') // printed once mounted
		if err != nil {
			cmd.Process.Kill()
			t.Fatalf("fatmsim: %v\n%s", err, stderr.String())
		}
		dev = strings.TrimSpace(dev)
		r := runProbe(t, "-i", "fore:"+dev+",vc="+vc+",poll=100ms", "--export", "tcp://"+coll.tcp)
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		if r.packets == 0 {
			t.Fatalf("vc %s: the probe captured nothing", vc)
		}
	}
	coll.p.terminate(t, 20*time.Second)
	got, l := storeFlows(t, coll.db)
	perVC := map[string]int{}
	for _, f := range l.Flows {
		vc := fmt.Sprintf("%d/%d", f.VPI, f.VCI)
		if vc != "1/100" && vc != "1/101" {
			t.Errorf("flow %v:%d > %v:%d on VC %s, outside the filters", f.Src, f.Sport, f.Dst, f.Dport, vc)
		}
		perVC[vc]++
	}
	if perVC["1/100"] == 0 || perVC["1/101"] == 0 {
		t.Errorf("flows per VC %v: each filtered run must see its own flows", perVC)
	}
	t.Logf("flows per VC: %v; file: %d flows", perVC, len(want))
	// The card timestamps a frame when its last cell arrives, which the
	// simulator places up to a cell time after the packet's pcap time:
	// times agree to within 2 ms; counts exactly.
	byKey := func(fs []uniflow) map[string]uniflow {
		// Records of one key (a port reused after FIN) are summed.
		m := map[string]uniflow{}
		for _, f := range fs {
			k := fmt.Sprintf("%v:%d>%v:%d/%d", f.Src, f.Sport, f.Dst, f.Dport, f.Proto)
			a, ok := m[k]
			if !ok {
				m[k] = f
				continue
			}
			a.Packets += f.Packets
			a.Octets += f.Octets
			a.First = min(a.First, f.First)
			a.Last = max(a.Last, f.Last)
			m[k] = a
		}
		return m
	}
	gm, wm := byKey(got), byKey(want)
	if len(got) != len(want) {
		t.Errorf("%d records from the device, %d from the file", len(got), len(want))
	}
	near := func(a, b int64) bool { return a-b <= 2 && b-a <= 2 }
	for k, w := range wm {
		g, ok := gm[k]
		switch {
		case !ok:
			t.Errorf("%s: in the file, not captured from the device", k)
		case g.Packets != w.Packets || g.Octets != w.Octets || !near(g.First, w.First) || !near(g.Last, w.Last):
			t.Errorf("%s: device %v, file %v", k, g, w)
		}
	}
	for k := range gm {
		if _, ok := wm[k]; !ok {
			t.Errorf("%s: captured from the device, not in the file", k)
		}
	}
}
