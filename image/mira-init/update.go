//go:build linux

package main

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gosnmp/gosnmp"
	"golang.org/x/sys/unix"

	"github.com/mira-project/mira/appliance/config"
	"github.com/mira-project/mira/image"
	"github.com/mira-project/mira/mib"
)

// updater serves the update endpoint and runs the trial of an updated
// slot (see package image: update.go).
type updater struct {
	sys    *image.System
	slot   string // running slot
	bootID string
	stop   chan<- int

	// snmpCheck, when set, asks mira-probe's SNMP agent for sysUpTime
	// and its exporter table (see snmpCheck); it says what it saw:
	// part of a trial slot's health.
	snmpCheck func() (string, error)

	mu      sync.Mutex
	trial   bool
	message string
	busy    bool
}

const (
	trialFile = bootDir + "/mira/trial"
	slotsFile = bootDir + "/mira/slots.json"
)

func other(slot string) string {
	if slot == "a" {
		return "b"
	}
	return "a"
}

func readSlots() (*image.Slots, error) {
	b, err := os.ReadFile(slotsFile)
	if err != nil {
		return nil, err
	}
	var s image.Slots
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", slotsFile, err)
	}
	return &s, nil
}

// writeFileSync replaces name atomically and durably.
func writeFileSync(name string, data []byte) error {
	tmp := name + ".new"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, name); err != nil {
		return err
	}
	unix.Sync()
	return nil
}

// setLoaders points both boot loaders at slot def, and, when once is
// set, at once for the next boot only.
//
// UEFI (systemd-boot): the trial slot's entry is written with a boot
// counter, loader/entries/mira-X+1-0.conf, and loader.conf's default names
// exactly that file. systemd-boot renames it to mira-X+0-1.conf before it
// starts the kernel; if that boot never reaches mira-init (a kernel that
// panics or hangs until the watchdog), the default then names no file and
// systemd-boot takes the first entry that has tries left: the old slot's
// (checked in QEMU with systemd-boot 252: one failed boot, then the old
// slot; a default of "mira-X*" kept matching the used-up entry and booted
// it again and again). Committed slots have entries without a counter.
//
// BIOS (SYSLINUX): syslinux.cfg's DEFAULT stays def; the trial slot's
// label goes into a boot-once record in ldlinux.sys's ADV, which SYSLINUX
// clears on disk before it starts the kernel (image.ADVBootOnce). When
// the ADV cannot be written, DEFAULT names the trial slot until mira-init
// of the trial slot points it back (a kernel that fails before that then
// boots again and again under BIOS).
func setLoaders(def, once string) error {
	s, err := readSlots()
	if err != nil {
		return err
	}
	sysDefault, entry := def, "mira-"+def+".conf"
	if once != "" {
		entry = trialEntry(once)
	}
	if err := writeADV(once); err != nil {
		log.Printf("update: SYSLINUX boot-once: %v; DEFAULT names slot %s until it starts", err, once)
		if once != "" {
			sysDefault = once
		}
	}
	if err := writeFileSync(filepath.Join(bootDir, "syslinux.cfg"), []byte(image.SyslinuxConfig(sysDefault, s.A.PartUUID, s.B.PartUUID))); err != nil {
		return err
	}
	return writeFileSync(filepath.Join(bootDir, "loader", "loader.conf"), []byte(fmt.Sprintf("default %s\ntimeout 0\neditor no\n", entry)))
}

// writeADV rewrites the ADV at the end of /boot/ldlinux.sys in place
// with a boot-once record for label ("": none), and reads it back.
func writeADV(label string) error {
	name := filepath.Join(bootDir, "ldlinux.sys")
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	off := fi.Size() - image.ADVBytes
	cur := make([]byte, image.ADVBytes)
	if _, err := f.ReadAt(cur, off); err != nil {
		return err
	}
	if err := image.CheckADV(cur); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if once, _ := image.ADVBootOnceOf(cur); once == label {
		return nil
	}
	adv, err := image.ADVBootOnce(label)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(adv, off); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
	if _, err := f.ReadAt(cur, off); err != nil {
		return err
	}
	if got, err := image.ADVBootOnceOf(cur); err != nil || got != label {
		return fmt.Errorf("%s: read back %q (%v)", name, got, err)
	}
	return nil
}

// trialEntry is the name of a slot's systemd-boot entry on trial: one
// try left, none done.
func trialEntry(slot string) string { return "mira-" + slot + "+1-0.conf" }

// slotEntries lists a slot's systemd-boot entries, counted or not.
func slotEntries(slot string) []string {
	dir := filepath.Join(bootDir, "loader", "entries")
	plain := filepath.Join(dir, "mira-"+slot+".conf")
	counted, _ := filepath.Glob(filepath.Join(dir, "mira-"+slot+"+*.conf"))
	if _, err := os.Stat(plain); err == nil {
		return append(counted, plain)
	}
	return counted
}

// startTrial runs at boot before the services: when this boot is the
// trial of an updated slot, the loaders go back to the old slot at once,
// so that any later reboot (a crash, a hang caught by the watchdog)
// returns there unless the slot is committed.
func (u *updater) startTrial() {
	b, err := os.ReadFile(trialFile)
	if err != nil {
		return
	}
	t := strings.TrimSpace(string(b))
	if t == u.slot {
		u.trial = true
		if err := setLoaders(other(u.slot), ""); err != nil {
			log.Printf("update: trial of slot %s: restoring the loaders: %v", u.slot, err)
		}
		log.Printf("update: trial boot of slot %s", u.slot)
		return
	}
	if f, ok := strings.CutPrefix(t, "failed:"); ok {
		u.message = fmt.Sprintf("slot %s did not run mira-probe healthy in its trial; back on slot %s", f, u.slot)
	} else {
		u.message = fmt.Sprintf("the update to slot %s did not reach mira-init; back on slot %s", t, u.slot)
		// systemd-boot fell back here because the trial entry's try
		// was used up: the default still names it.
		if err := setLoaders(u.slot, ""); err != nil {
			log.Printf("update: pointing the loaders at slot %s: %v", u.slot, err)
		}
	}
	log.Printf("update: %s", u.message)
	os.Remove(trialFile)
	unix.Sync()
}

// judgeTrial commits the trial slot once mira-probe has run healthy, or
// reboots into the old slot when the trial time passes first.
func (u *updater) judgeTrial(ctx context.Context, probe *service) {
	if !u.trial {
		return
	}
	deadline := time.Now().Add(u.sys.Update.Trial)
	for time.Now().Before(deadline) {
		healthy := probe != nil && probe.healthyFor() >= 10*time.Second
		health := "mira-probe up 10s (no SNMP agent on loopback to ask)"
		if healthy && u.snmpCheck != nil {
			h, err := u.snmpCheck()
			if err != nil {
				log.Printf("update: trial of slot %s: SNMP: %v", u.slot, err)
				healthy = false
			}
			health = "mira-probe up 10s, " + h
		}
		if healthy {
			log.Printf("update: trial of slot %s: healthy: %s", u.slot, health)
			if err := u.commit(); err != nil {
				log.Printf("update: commit of slot %s: %v", u.slot, err)
			}
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
	u.mu.Lock()
	u.message = fmt.Sprintf("slot %s did not run mira-probe healthy within %s", u.slot, u.sys.Update.Trial)
	u.mu.Unlock()
	log.Printf("update: %s; rebooting into slot %s", u.message, other(u.slot))
	os.WriteFile(trialFile, []byte("failed:"+u.slot+"\n"), 0o644)
	unix.Sync()
	u.stop <- unix.LINUX_REBOOT_CMD_RESTART
}

func (u *updater) commit() error {
	s, err := readSlots()
	if err != nil {
		return err
	}
	s.Active = u.slot
	b, _ := json.MarshalIndent(s, "", "  ")
	if err := writeFileSync(slotsFile, append(b, '\n')); err != nil {
		return err
	}
	// The entry loses its boot counter (as systemd-bless-boot does): the
	// plain name is written first, the counted one removed after.
	entries := slotEntries(u.slot)
	plain := filepath.Join(bootDir, "loader", "entries", "mira-"+u.slot+".conf")
	if len(entries) > 0 && entries[0] != plain {
		b, err := os.ReadFile(entries[0])
		if err != nil {
			return err
		}
		if err := writeFileSync(plain, b); err != nil {
			return err
		}
		for _, e := range entries {
			if e != plain {
				os.Remove(e)
			}
		}
		unix.Sync()
	}
	if err := setLoaders(u.slot, ""); err != nil {
		return err
	}
	if err := os.Remove(trialFile); err != nil {
		return err
	}
	unix.Sync()
	u.mu.Lock()
	u.trial = false
	u.message = "committed slot " + u.slot
	u.mu.Unlock()
	log.Printf("update: committed slot %s", u.slot)
	return nil
}

func (u *updater) serve(ctx context.Context) {
	if u.sys.Update.Listen == "" {
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /update/status", u.status)
	mux.HandleFunc("PUT /update", u.put)
	srv := &http.Server{Addr: u.sys.Update.Listen, Handler: u.auth(mux), ReadHeaderTimeout: 10 * time.Second}
	go func() { <-ctx.Done(); srv.Close() }()
	crt, key := filepath.Join(dataDir, "tls", "update.crt"), filepath.Join(dataDir, "tls", "update.key")
	var err error
	if _, e := os.Stat(crt); e == nil {
		log.Printf("update: HTTPS on %s", u.sys.Update.Listen)
		err = srv.ListenAndServeTLS(crt, key)
	} else {
		log.Printf("update: HTTP on %s (no %s: plain HTTP, token only)", u.sys.Update.Listen, crt)
		err = srv.ListenAndServe()
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Printf("update: %v", err)
	}
}

func (u *updater) auth(h http.Handler) http.Handler {
	want := []byte("Bearer " + u.sys.Update.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			log.Printf("update: refused %s %s from %s: bad token", r.Method, r.URL.Path, r.RemoteAddr)
			http.Error(w, "bad token", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (u *updater) status(w http.ResponseWriter, r *http.Request) {
	s := image.Status{Slot: u.slot, BootID: u.bootID}
	if sl, err := readSlots(); err == nil {
		s.Active = sl.Active
		if u.slot == "a" {
			s.Version = sl.A.Version
		} else {
			s.Version = sl.B.Version
		}
	}
	u.mu.Lock()
	s.Trial, s.Message = u.trial, u.message
	u.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(s)
}

// put receives a payload, checks its digest and signature before any byte
// is written, writes the inactive slot and its kernel, and reboots into
// it once.
func (u *updater) put(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	if u.busy || u.trial {
		u.mu.Unlock()
		http.Error(w, "an update is under way or on trial", http.StatusConflict)
		return
	}
	u.busy = true
	u.mu.Unlock()
	defer func() { u.mu.Lock(); u.busy = false; u.mu.Unlock() }()
	fail := func(code int, format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		log.Printf("update: refused: %s", msg)
		u.mu.Lock()
		u.message = "refused: " + msg
		u.mu.Unlock()
		http.Error(w, msg, code)
	}
	rootSize, err1 := strconv.Atoi(r.Header.Get("X-Mira-Root-Size"))
	kernelSize, err2 := strconv.Atoi(r.Header.Get("X-Mira-Kernel-Size"))
	if err1 != nil || err2 != nil || rootSize <= 0 || kernelSize <= 0 || rootSize > 64<<20 || kernelSize > 64<<20 {
		fail(http.StatusBadRequest, "bad X-Mira-Root-Size or X-Mira-Kernel-Size")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(rootSize+kernelSize)+1))
	if err != nil || len(body) != rootSize+kernelSize {
		fail(http.StatusBadRequest, "body: %d bytes, want %d (%v)", len(body), rootSize+kernelSize, err)
		return
	}
	digest := sha256.Sum256(body)
	if fmt.Sprintf("%x", digest) != r.Header.Get("X-Mira-Sha256") {
		fail(http.StatusBadRequest, "SHA-256 mismatch")
		return
	}
	if pub, err := os.ReadFile(filepath.Join(bootDir, "mira", "update.pub")); err == nil {
		pk, err := image.ParsePublicKeyPEM(pub)
		if err != nil {
			fail(http.StatusInternalServerError, "%v", err)
			return
		}
		sig, err := base64.StdEncoding.DecodeString(r.Header.Get("X-Mira-Signature"))
		if err != nil || !ed25519.Verify(pk, digest[:], sig) {
			fail(http.StatusForbidden, "the ed25519 signature does not verify against mira/update.pub")
			return
		}
	}
	if len(body) < 4 || string(body[:4]) != "hsqs" {
		fail(http.StatusBadRequest, "the root is not a squashfs")
		return
	}
	target := other(u.slot)
	label := image.SlotALabel
	if target == "b" {
		label = image.SlotBLabel
	}
	dev, err := findPartition(label)
	if err != nil {
		fail(http.StatusInternalServerError, "%v", err)
		return
	}
	log.Printf("update: writing %d bytes to slot %s (%s) and a %d-byte kernel", rootSize, target, dev, kernelSize)
	if err := writeDevice(dev, body[:rootSize]); err != nil {
		fail(http.StatusInternalServerError, "slot %s: %v", target, err)
		return
	}
	// The inactive slot's old kernel goes first: the boot partition has
	// room for two kernels, not three.
	kernel := filepath.Join(bootDir, "vmlinuz-"+target)
	if err := os.Remove(kernel); err != nil && !os.IsNotExist(err) {
		fail(http.StatusInternalServerError, "kernel: %v", err)
		return
	}
	if err := writeFileSync(kernel, body[rootSize:]); err != nil {
		fail(http.StatusInternalServerError, "kernel: %v", err)
		return
	}
	// Read both back from the disk before the loaders name them.
	for _, c := range []struct {
		name string
		data []byte
	}{{dev, body[:rootSize]}, {kernel, body[rootSize:]}} {
		if err := readBack(c.name, c.data); err != nil {
			fail(http.StatusInternalServerError, "%v", err)
			return
		}
	}
	sl, err := readSlots()
	if err != nil {
		fail(http.StatusInternalServerError, "%v", err)
		return
	}
	uuid := sl.A.PartUUID
	info := &sl.A
	if target == "b" {
		uuid, info = sl.B.PartUUID, &sl.B
	}
	info.Version = fmt.Sprintf("update %x", digest[:6])
	b, _ := json.MarshalIndent(sl, "", "  ")
	entry := fmt.Sprintf("title MIRA (slot %s)\nlinux /vmlinuz-%s\noptions %s\n", strings.ToUpper(target), target, image.KernelCmdline(target, uuid))
	for _, step := range []func() error{
		func() error { return writeFileSync(slotsFile, append(b, '\n')) },
		func() error {
			for _, e := range slotEntries(target) {
				if err := os.Remove(e); err != nil {
					return err
				}
			}
			return writeFileSync(filepath.Join(bootDir, "loader", "entries", trialEntry(target)), []byte(entry))
		},
		func() error { return setLoaders(u.slot, target) },
		func() error { return writeFileSync(trialFile, []byte(target+"\n")) },
	} {
		if err := step(); err != nil {
			fail(http.StatusInternalServerError, "%v", err)
			return
		}
	}
	u.mu.Lock()
	u.message = "slot " + target + " written; rebooting into it once"
	u.mu.Unlock()
	log.Printf("update: %s", u.message)
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprintf(w, "slot %s written; rebooting into it once\n", target)
	go func() {
		time.Sleep(500 * time.Millisecond) // let the response leave
		u.stop <- unix.LINUX_REBOOT_CMD_RESTART
	}()
}

// readBack checks that name holds want, read from the disk: the page
// cache's copy is dropped first (the data was synced).
func readBack(name string, want []byte) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
	got := make([]byte, len(want))
	if _, err := io.ReadFull(f, got); err != nil {
		return fmt.Errorf("reading back %s: %w", name, err)
	}
	if sha256.Sum256(got) != sha256.Sum256(want) {
		return fmt.Errorf("reading back %s: it differs from what was written", name)
	}
	return nil
}

func writeDevice(dev string, data []byte) error {
	f, err := os.OpenFile(dev, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// snmpCheck returns a check that mira-probe's agent answers on loopback
// and that the probe is exporting: every configured exporter is in the
// miraExporterTable, connected (miraExpState 1), and has sent at least
// one IPFIX message (its templates, sent at start). It is nil when the
// configuration has no agent or no community that loopback may use (the
// trial then rests on the process staying up).
func snmpCheck(cfg *config.Probe) func() (string, error) {
	if cfg.SNMPListen == "" {
		return nil
	}
	ap, err := netip.ParseAddrPort(cfg.SNMPListen)
	if err != nil {
		return nil
	}
	lo := netip.MustParseAddr("127.0.0.1")
	for _, c := range cfg.SNMP.Communities {
		for _, src := range c.Sources {
			if p, err := netip.ParsePrefix(src); err == nil && p.Contains(lo) {
				return func() (string, error) {
					g := &gosnmp.GoSNMP{Target: "127.0.0.1", Port: ap.Port(), Community: c.Name,
						Version: gosnmp.Version2c, Timeout: 2 * time.Second, Retries: 1}
					if err := g.Connect(); err != nil {
						return "", err
					}
					defer g.Conn.Close()
					if _, err := g.Get([]string{"1.3.6.1.2.1.1.3.0"}); err != nil {
						return "", err
					}
					h, err := exporting(g, len(cfg.Export))
					return "SNMP answers, " + h, err
				}
			}
		}
	}
	return nil
}

// exporting checks the probe's exporter table over SNMP: n exporters,
// each connected, and, once the probe has expired a flow (the sum of
// miraFlowsExpired*), each with at least one IPFIX message sent. Before
// any flow is expired (a quiet capture link) there is nothing to send:
// an exporter's domains, templates and messages start with its first
// record, and its state reads connected until an export fails.
func exporting(g *gosnmp.GoSNMP, n int) (string, error) {
	if n == 0 {
		return "no exporter configured", nil
	}
	r, err := g.Get([]string{mib.MiraFlowsExpiredIdle + ".0", mib.MiraFlowsExpiredActive + ".0", mib.MiraFlowsExpiredEnd + ".0", mib.MiraFlowsExpiredForced + ".0"})
	if err != nil {
		return "", fmt.Errorf("flows expired: %w", err)
	}
	var expired uint64
	for _, v := range r.Variables {
		expired += gosnmp.ToBigInt(v.Value).Uint64()
	}
	state := map[string]int{}
	msgs := map[string]uint64{}
	for _, col := range []string{mib.MiraExpState, mib.MiraExpMessages} {
		err := g.BulkWalk(col, func(v gosnmp.SnmpPDU) error {
			idx := strings.TrimPrefix(strings.TrimPrefix(v.Name, "."), col+".")
			if col == mib.MiraExpState {
				state[idx] = int(gosnmp.ToBigInt(v.Value).Int64())
			} else {
				msgs[idx] = gosnmp.ToBigInt(v.Value).Uint64()
			}
			return nil
		})
		if err != nil {
			return "", fmt.Errorf("exporter table: %w", err)
		}
	}
	if len(state) != n {
		return "", fmt.Errorf("not exporting: %d of %d exporters in the exporter table", len(state), n)
	}
	for idx, st := range state {
		if st != 1 {
			return "", fmt.Errorf("not exporting: exporter %s is %s", idx, map[int]string{2: "connecting", 3: "spooling"}[st])
		}
		if msgs[idx] == 0 && expired > 0 {
			return "", fmt.Errorf("not exporting: exporter %s has sent no message of %d flows expired", idx, expired)
		}
	}
	var sent uint64
	for _, m := range msgs {
		sent += m
	}
	return fmt.Sprintf("exporting: %d exporters connected, %d flows expired, %d IPFIX messages sent", n, expired, sent), nil
}
