package image_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mira-project/mira/image"
)

func writeKey(t *testing.T, name string) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return k
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestApplianceUpdate boots a signed image with SeaBIOS and updates it:
// a badly signed image is refused before a byte is written; a good one
// is written to slot B, booted once and committed; a broken one (its
// mira-probe exits at start) is written to slot A, fails its trial, and
// the box comes back on slot B by itself.
func TestApplianceUpdate(t *testing.T) {
	if testing.Short() {
		t.Skip("boots QEMU several times under TCG (minutes)")
	}
	requireTools(t)
	ctx := context.Background()
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "bin")
	if err := image.BuildBinaries(ctx, "", bin, false, testWriter{t}); err != nil {
		t.Fatal(err)
	}
	broken := filepath.Join(tmp, "broken")
	os.MkdirAll(broken, 0o755)
	for _, f := range [][2]string{{"mira-init", "mira-init"}, {"mira-init", "mira-probe"}} {
		// mira-init refuses to run unless it is PID 1: as mira-probe it exits at once.
		b, err := os.ReadFile(filepath.Join(bin, f[0]))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(broken, f[1]), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	key := filepath.Join(tmp, "key.pem")
	signKey := writeKey(t, key)
	otherKey := filepath.Join(tmp, "other.pem")
	writeKey(t, otherKey)
	const token = "test-token-0123456789"
	sys := []byte("update: {listen: 0.0.0.0:8443, token: " + token + ", trial: 40s}\nntp: []\n")
	// An exporter to a host TCP listener: a trial slot must be
	// exporting (its exporter connected) to be committed.
	ipfixL, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ipfixL.Close()
	go func() {
		for {
			c, err := ipfixL.Accept()
			if err != nil {
				return
			}
			go io.Copy(io.Discard, c)
		}
	}()
	probe := []byte(fmt.Sprintf("capture: {interfaces: [eth1]}\nexport: [{url: \"tcp://10.0.2.2:%d\"}]\nsnmp_listen: 0.0.0.0:161\nsnmp: {communities: [{name: public, sources: [10.0.2.0/24, 127.0.0.0/8]}]}\n",
		ipfixL.Addr().(*net.TCPAddr).Port))
	build := func(name, b, k string) string {
		out := filepath.Join(tmp, name)
		if err := image.Build(ctx, image.Options{Output: out, Bin: b, SignKey: k, ProbeYAML: probe, SystemYAML: sys}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	v1 := build("v1.img", bin, key)
	v2 := build("v2.img", bin, key)
	v3 := build("v3.img", broken, key)
	forged := build("forged.img", bin, otherKey)

	port := freeTCPPort(t)
	c, err := image.NewClient(fmt.Sprintf("http://127.0.0.1:%d", port), token, "")
	if err != nil {
		t.Fatal(err)
	}
	g := bootUpdatable(t, v1, false, port)
	g.waitSNMP(t)
	st, err := c.Status(ctx)
	if err != nil || st.Slot != "a" {
		t.Fatalf("status: %+v %v", st, err)
	}
	bad, _ := image.NewClient(c.URL, "wrong-token-0123456789", "")
	if _, err := bad.Status(ctx); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("a wrong token was not refused: %v", err)
	}

	// A payload signed with another key: refused, nothing written.
	slotB := int64(1<<20 + 40<<20 + 24<<20)
	p, err := image.ReadPayload(forged)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := os.ReadFile(forged + ".sig")
	if err != nil {
		t.Fatal(err)
	}
	err = c.Send(ctx, p, decodeSig(t, sig))
	if err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("a badly signed image: %v", err)
	}
	if b := readAt(t, v1, slotB, 4096); !bytes.Equal(b, make([]byte, 4096)) {
		t.Fatal("slot B was written although the signature did not verify")
	}
	t.Logf("badly signed image refused: %v", err)

	// A good update: slot B, booted once, committed.
	// sendPayload sends p and restarts QEMU (with OVMF when ovmf is
	// set) each time the guest reboots, until the probe is back.
	reboots := 0
	sendPayload := func(p *image.Payload, sig []byte, ovmf bool) (ok bool, st *image.Status, err error) {
		t.Helper()
		reboots = 0
		before, err := c.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := c.Send(ctx, p, sig); err != nil {
			t.Fatal(err)
		}
		t.Logf("sent %d + %d bytes in %s", len(p.Root), len(p.Kernel), time.Since(start).Round(100*time.Millisecond))
		type res struct {
			ok  bool
			st  *image.Status
			err error
		}
		done := make(chan res, 1)
		wctx, cancel := context.WithTimeout(ctx, 8*time.Minute)
		defer cancel()
		go func() {
			ok, st, err := c.WaitBoot(wctx, before.BootID, map[string]string{"a": "b", "b": "a"}[before.Slot])
			done <- res{ok, st, err}
		}()
		// With -no-reboot every guest reboot ends QEMU: start it again,
		// as the power would come back on a PC.
		for {
			select {
			case r := <-done:
				return r.ok, r.st, r.err
			case <-g.done:
				t.Logf("guest rebooted (%.0f s after the upload)", time.Since(start).Seconds())
				reboots++
				if reboots > 4 {
					t.Fatalf("the guest rebooted %d times after the upload", reboots)
				}
				g = bootFwd(t, v1, ovmf, tcpFwd{update: port})
			}
		}
	}
	update := func(img string) (ok bool, st *image.Status, err error) {
		t.Helper()
		p, err := image.ReadPayload(img)
		if err != nil {
			t.Fatal(err)
		}
		sig, err := os.ReadFile(img + ".sig")
		if err != nil {
			t.Fatal(err)
		}
		return sendPayload(p, decodeSig(t, sig), false)
	}
	ok, st, err := update(v2)
	if err != nil || !ok || st.Slot != "b" {
		t.Fatalf("update to v2: ok %v status %+v err %v\n%s", ok, st, err, g.console.String())
	}
	t.Logf("update to v2: %+v", st)
	if m := regexp.MustCompile(`healthy: .*exporting: 1 exporters connected.*`).FindString(g.console.String()); m == "" {
		t.Errorf("the trial did not find mira-probe exporting")
	} else {
		t.Logf("trial: %s", m)
	}

	// A broken update: slot A fails its trial, the box returns to slot B.
	ok, st, err = update(v3)
	if err != nil || ok || st.Slot != "b" || st.Active != "b" {
		t.Fatalf("update to the broken v3: ok %v status %+v err %v", ok, st, err)
	}
	t.Logf("update to the broken v3: back on slot %s: %s", st.Slot, st.Message)
	g.waitSNMP(t)

	// A new slot that fails before mira-init: its root does not mount,
	// the kernel panics (panic=10 reboots). SeaBIOS: SYSLINUX boots it
	// once (the ADV's boot-once record), then its DEFAULT, slot B. Then
	// the same with OVMF: systemd-boot's boot counter lets the trial
	// entry be tried once, then it falls back to slot B.
	p, err = image.ReadPayload(v2)
	if err != nil {
		t.Fatal(err)
	}
	p.Root = append([]byte("hsqs"), make([]byte, len(p.Root)-4)...)
	d := p.Digest()
	for _, ovmf := range []bool{false, true} {
		fw := map[bool]string{false: "SeaBIOS", true: "OVMF"}[ovmf]
		ok, st, err = sendPayload(p, ed25519.Sign(signKey, d[:]), ovmf)
		if err != nil || ok || st.Slot != "b" || st.Active != "b" || !strings.Contains(st.Message, "did not reach mira-init") {
			t.Fatalf("%s: update to a slot whose kernel panics: ok %v status %+v err %v\n%s", fw, ok, st, err, g.console.String())
		}
		if reboots != 2 {
			t.Errorf("%s: %d reboots after the upload, want 2 (into the new slot, then back)", fw, reboots)
		}
		if !strings.Contains(g.console.String(), "MIRA appliance, slot b") {
			t.Errorf("%s: the last boot was not slot B", fw)
		}
		t.Logf("%s: update to a slot whose kernel panics: back on slot %s after %d reboots: %s", fw, st.Slot, reboots, st.Message)
		g.waitSNMP(t)
	}
	// The loaders name slot B again; the used-up entry stays, unused.
	out, err := exec.Command("mtype", "-i", v1+"@@1M", "::loader/loader.conf").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "default mira-b.conf") {
		t.Errorf("loader.conf after the fallback: %v\n%s", err, out)
	}
	out, _ = exec.Command("mdir", "-b", "-i", v1+"@@1M", "::loader/entries").CombinedOutput()
	t.Logf("loader entries: %s", strings.Join(strings.Fields(string(out)), " "))
}

func decodeSig(t *testing.T, b []byte) []byte {
	t.Helper()
	var out [ed25519.SignatureSize]byte
	n, err := base64Decode(out[:], strings.TrimSpace(string(b)))
	if err != nil || n != len(out) {
		t.Fatalf("signature file: %v", err)
	}
	return out[:]
}

func readAt(t *testing.T, name string, off int64, n int) []byte {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return b
}

func base64Decode(dst []byte, s string) (int, error) {
	return base64.StdEncoding.Decode(dst, []byte(s))
}
