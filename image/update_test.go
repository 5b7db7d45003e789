package image_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
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

// writeTLSCert writes a self-signed certificate for 127.0.0.1 (the
// forwarded update port) and its key to dir/update.crt and update.key.
func writeTLSCert(t *testing.T, dir string) (crt, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "mira probe"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	crt, key = filepath.Join(dir, "update.crt"), filepath.Join(dir, "update.key")
	if err := os.WriteFile(crt, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return crt, key
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

// TestApplianceUpdate boots a signed image built with
// `mira image build --update-cert --update-key`, written to a 1 GiB
// disk, first with OVMF (the backup GPT in the middle of the disk: the
// firmware boots it, mira-init grows the data partition and makes it
// ext4, the TLS files carried over), and updates it over HTTPS: a client
// without the CA is refused (certificate), a wrong token gets 401, a
// badly signed image is refused before a byte is written; a good one
// (`mira image update --ca`) is written to slot B, booted once (SeaBIOS
// from here on) and committed; a broken one (its mira-probe exits at
// start) is written to slot A, fails its trial, and the box comes back on
// slot B by itself.
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
	// v1 through the CLI, as a user builds it: with the update
	// endpoint's TLS certificate and key (self-signed, for 127.0.0.1,
	// where the test reaches the forwarded port).
	crt, tlsKey := writeTLSCert(t, tmp)
	probeFile, sysFile := filepath.Join(tmp, "probe.yaml"), filepath.Join(tmp, "system.yaml")
	if err := os.WriteFile(probeFile, probe, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sysFile, sys, 0o644); err != nil {
		t.Fatal(err)
	}
	v1 := filepath.Join(tmp, "v1.img")
	var out bytes.Buffer
	if err := image.Run(ctx, []string{"build", "--bin", bin, "--sign", key, "--config", probeFile, "--system", sysFile,
		"--update-cert", crt, "--update-key", tlsKey, "-o", v1}, &out, &out); err != nil {
		t.Fatalf("mira image build: %v\n%s", err, &out)
	}
	// As if written to a 1 GiB disk: the backup GPT in the middle.
	if err := os.Truncate(v1, 1<<30); err != nil {
		t.Fatal(err)
	}
	v2 := build("v2.img", bin, key)
	v3 := build("v3.img", broken, key)
	forged := build("forged.img", bin, otherKey)

	port := freeTCPPort(t)
	url := fmt.Sprintf("https://127.0.0.1:%d", port)
	c, err := image.NewClient(url, token, crt)
	if err != nil {
		t.Fatal(err)
	}
	g := bootUpdatable(t, v1, true, port)
	g.waitSNMP(t)
	t.Logf("OVMF, 1 GiB disk: first SNMP answer %.1f s after QEMU started", time.Since(g.start).Seconds())
	for _, l := range []string{"data partition vda4 grown from 34 to 934 MiB", "ext4 of 896 MiB made", "update: HTTPS on 0.0.0.0:8443"} {
		if !strings.Contains(g.console.String(), l) {
			t.Errorf("the console does not say %q", l)
		}
	}
	for _, l := range strings.Split(g.console.String(), "\n") {
		if strings.Contains(l, "data partition") || strings.Contains(l, "update: HTTPS") {
			t.Logf("console: %s", strings.TrimSpace(l))
		}
	}
	st, err := c.Status(ctx)
	if err != nil || st.Slot != "a" {
		t.Fatalf("status over HTTPS: %+v %v", st, err)
	}
	// Without the CA the probe's certificate is not trusted; plain HTTP
	// gets no answer from the endpoint; a wrong token is refused.
	noCA, _ := image.NewClient(url, token, "")
	if _, err := noCA.Status(ctx); err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
		t.Errorf("a client without the CA: %v", err)
	} else {
		t.Logf("a client without the CA: %v", err)
	}
	out.Reset()
	err = image.Run(ctx, []string{"update", "--to", url, "--token", token, v2}, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("mira image update without --ca: %v\n%s", err, &out)
	}
	plain, _ := image.NewClient(fmt.Sprintf("http://127.0.0.1:%d", port), token, "")
	if st, err := plain.Status(ctx); err == nil {
		t.Errorf("the HTTPS endpoint answered plain HTTP: %+v", st)
	}
	bad, _ := image.NewClient(c.URL, "wrong-token-0123456789", crt)
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
	type res struct {
		ok  bool
		st  *image.Status
		err error
	}
	// await runs f (it waits for the probe to come back from an update)
	// and restarts QEMU (with OVMF when ovmf is set) each time the guest
	// reboots meanwhile.
	await := func(f func() res, ovmf bool) (ok bool, st *image.Status, err error) {
		t.Helper()
		reboots = 0
		start := time.Now()
		done := make(chan res, 1)
		go func() { done <- f() }()
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
	// sendPayload sends p and waits for the probe to decide on it.
	sendPayload := func(p *image.Payload, sig []byte, ovmf bool) (ok bool, st *image.Status, err error) {
		t.Helper()
		before, err := c.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := c.Send(ctx, p, sig); err != nil {
			t.Fatal(err)
		}
		t.Logf("sent %d + %d bytes in %s", len(p.Root), len(p.Kernel), time.Since(start).Round(100*time.Millisecond))
		return await(func() res {
			wctx, cancel := context.WithTimeout(ctx, 8*time.Minute)
			defer cancel()
			ok, st, err := c.WaitBoot(wctx, before.BootID, map[string]string{"a": "b", "b": "a"}[before.Slot])
			return res{ok, st, err}
		}, ovmf)
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
	// The good update as a user sends it: mira image update --ca, over HTTPS.
	var cliOut lockedBuffer
	ok, _, err := await(func() res {
		err := image.Run(ctx, []string{"update", "--to", url, "--token", token, "--ca", crt, "--timeout", "8m", v2}, &cliOut, &cliOut)
		return res{ok: err == nil, err: err}
	}, false)
	if err == nil {
		st, err = c.Status(ctx)
	}
	if err != nil || !ok || st.Slot != "b" || st.Active != "b" {
		t.Fatalf("mira image update to v2: ok %v status %+v err %v\n%s\n%s", ok, st, err, cliOut.String(), g.console.String())
	}
	t.Logf("mira image update --ca to v2 over HTTPS (%d reboots): %s; status %+v", reboots, strings.TrimSpace(cliOut.String()), st)
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
	conf, err := exec.Command("mtype", "-i", v1+"@@1M", "::loader/loader.conf").CombinedOutput()
	if err != nil || !strings.Contains(string(conf), "default mira-b.conf") {
		t.Errorf("loader.conf after the fallback: %v\n%s", err, conf)
	}
	entries, _ := exec.Command("mdir", "-b", "-i", v1+"@@1M", "::loader/entries").CombinedOutput()
	t.Logf("loader entries: %s", strings.Join(strings.Fields(string(entries)), " "))
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
