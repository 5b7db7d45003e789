package image_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	diskfs "github.com/diskfs/go-diskfs"

	"github.com/mira-project/mira/image"
	"github.com/mira-project/mira/tools/peertest"
)

// TestBuildUpdateTLS checks that --update-cert and --update-key land on
// the data partition as tls/update.crt and tls/update.key (where
// mira-init looks for them; TestApplianceUpdate serves HTTPS from them),
// and that a certificate without its key, or with another key, is
// refused with the files named. The programs and the kernel are
// stand-ins: the image is not booted.
func TestBuildUpdateTLS(t *testing.T) {
	peertest.Program(t, "syslinux")
	peertest.Program(t, "mcopy")
	peertest.File(t, image.DefaultGPTMBR, "gptmbr.bin (Debian package syslinux)")
	peertest.File(t, image.DefaultSDBootEFI, "systemd-boot (Debian package systemd-boot-efi)")
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "bin")
	os.MkdirAll(bin, 0o755)
	for _, p := range []string{"mira-init", "mira-probe", "vmlinuz"} {
		if err := os.WriteFile(filepath.Join(bin, p), []byte("stand-in "+p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	crt, key := writeTLSCert(t, tmp)
	other := filepath.Join(tmp, "other")
	os.MkdirAll(other, 0o755)
	_, otherKey := writeTLSCert(t, other)
	img := filepath.Join(tmp, "mira.img")
	build := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := image.Run(context.Background(), append([]string{"build", "--bin", bin, "--kernel", filepath.Join(bin, "vmlinuz"), "-o", img}, args...), &out, &out)
		return out.String(), err
	}
	if out, err := build("--update-cert", crt, "--update-key", key); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	d, err := diskfs.Open(img, diskfs.WithOpenMode(diskfs.ReadOnly))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	fs, err := d.GetFilesystem(4)
	if err != nil {
		t.Fatal(err)
	}
	for name, src := range map[string]string{"/tls/update.crt": crt, "/tls/update.key": key} {
		f, err := fs.OpenFile(name, os.O_RDONLY)
		if err != nil {
			t.Fatalf("data partition %s: %v", name, err)
		}
		got, err := io.ReadAll(f)
		f.Close()
		want, _ := os.ReadFile(src)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("data partition %s: %v, %d bytes, want the %d of %s", name, err, len(got), len(want), src)
		}
	}
	// A person adds files to the FAT partitions from any PC before the
	// first boot: mtools (as Windows and macOS) must read both, which a
	// FAT32 with fewer than 65,525 clusters is not to them.
	parts, err := d.GetPartitionTable()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 4} {
		off := parts.GetPartitions()[n-1].GetStart()
		at := fmt.Sprintf("%s@@%d", img, off)
		if out, err := exec.Command("mdir", "-i", at, "::").CombinedOutput(); err != nil {
			t.Errorf("mdir of partition %d: %v\n%s", n, err, out)
		}
		if out, err := exec.Command("minfo", "-i", at, "::").CombinedOutput(); err != nil {
			t.Errorf("minfo of partition %d: %v\n%s", n, err, out)
		}
	}
	if out, err := exec.Command("mtype", "-i", fmt.Sprintf("%s@@%d", img, parts.GetPartitions()[3].GetStart()), "::tls/update.crt").CombinedOutput(); err != nil {
		t.Errorf("mtype tls/update.crt from the data partition: %v\n%s", err, out)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--update-cert", crt}, "needs both a certificate and its key"},
		{[]string{"--update-key", key}, "needs both a certificate and its key"},
		{[]string{"--update-cert", crt, "--update-key", otherKey}, "update certificate " + crt + " and key " + otherKey + ": tls: private key does not match public key"},
		{[]string{"--update-cert", key, "--update-key", key}, "update certificate " + key + " and key " + key},
		{[]string{"--update-cert", filepath.Join(tmp, "missing.crt"), "--update-key", key}, "missing.crt: no such file"},
	} {
		if out, err := build(c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err = %v, want %q\n%s", c.args, err, c.want, out)
		}
	}
}
