//go:build linux

// Command mira-init is PID 1 of the MIRA appliance image: it mounts the
// file systems, configures the management and capture interfaces, sets
// the clock, starts mira-probe (and mira-collector) under supervision,
// feeds the watchdog and shuts down cleanly on the ACPI power button.
// See package image for the design.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"log/syslog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mira-project/mira/appliance/config"
	"github.com/mira-project/mira/image"
)

const (
	bootDir = "/boot"
	dataDir = "/data"
	binDir  = "/mira/bin"
	runDir  = "/run/mira"
)

// logger writes to the console, the rotated init log and, once
// configured, a remote syslog.
type logger struct {
	mu     sync.Mutex
	out    []io.Writer
	syslog *syslog.Writer
}

func (l *logger) Printf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	line := time.Now().UTC().Format("2006-01-02T15:04:05.000Z") + " mira-init: " + strings.TrimRight(msg, "\n") + "\n"
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, w := range l.out {
		w.Write([]byte(line))
	}
	if l.syslog != nil {
		l.syslog.Info("mira-init: " + msg)
	}
}

func (l *logger) add(w io.Writer) {
	l.mu.Lock()
	l.out = append(l.out, w)
	l.mu.Unlock()
}

var log = &logger{}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func main() {
	console, err := os.OpenFile("/dev/console", os.O_WRONLY, 0)
	if err != nil {
		console = os.Stderr
	}
	log.add(console)
	// Libraries that use the standard logger (the DHCP client) write
	// through ours; PID 1 starts without stdout/stderr.
	stdlog.SetFlags(0)
	stdlog.SetOutput(writerFunc(func(p []byte) (int, error) { log.Printf("%s", p); return len(p), nil }))
	if os.Getpid() != 1 {
		log.Printf("not PID 1; refusing to run")
		os.Exit(2)
	}
	if err := run(console); err != nil {
		log.Printf("fatal: %v", err)
	}
	// PID 1 must not exit: halt instead.
	shutdown(nil, unix.LINUX_REBOOT_CMD_POWER_OFF)
}

func run(console *os.File) error {
	t0 := time.Now()
	if err := mountBase(); err != nil {
		return err
	}
	// The kernel sends SIGINT to PID 1 on Ctrl-Alt-Del instead of rebooting at once.
	unix.Reboot(unix.LINUX_REBOOT_CMD_CAD_OFF)
	slot := cmdlineValue("mira.slot")
	log.Printf("MIRA appliance, slot %s, up %.2fs", slot, uptime())

	if err := mountLabel(image.BootLabel, bootDir, "vfat", unix.MS_NOATIME, "flush"); err != nil {
		log.Printf("boot partition: %v", err)
	}
	// The data partition: grown over the rest of the disk when there is
	// room, ext4 once grown, else the FAT the image was built with.
	dataDev, err := findPartition(image.DataLabel)
	dataKind := ""
	if err == nil {
		if err := growDataPartition(dataDev); err != nil {
			log.Printf("data partition: growing: %v", err)
		}
		dataKind, err = mountData(dataDev)
	}
	if err != nil {
		log.Printf("data partition: %v (state and logs are kept in RAM this boot)", err)
		dataTmpfs()
	}
	seedRandom()
	if dataDev != "" && dataKind != "ext4" {
		if err := convertData(dataDev); err != nil {
			log.Printf("data partition: %v", err)
			if !mounted(dataDir) {
				log.Printf("data partition: state and logs are kept in RAM this boot")
				dataTmpfs()
			}
		}
	}
	for _, d := range []string{"log", "snmp", "spool", "mira", "collector", "tls"} {
		os.MkdirAll(filepath.Join(dataDir, d), 0o755)
	}
	initLog, err := newRotating(filepath.Join(dataDir, "log", "init.log"), 1<<20, 3)
	if err == nil {
		log.add(initLog)
	}

	sys, err := loadSystem()
	if err != nil {
		log.Printf("%v; using the defaults", err)
		sys, _ = image.ParseSystem("defaults", nil)
	}
	// A trial boot of an updated slot points the loaders back at the
	// old slot before anything else can fail.
	stop := make(chan int, 4)
	bootID, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	upd := &updater{sys: sys, slot: slot, bootID: strings.TrimSpace(string(bootID)), stop: stop}
	upd.startTrial()

	probeCfgFile, probeCfg, err := prepareProbeConfig()
	if err != nil {
		log.Printf("probe configuration: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Capture ports first: silent before anything can make them talk.
	var captureIfaces []string
	host := ""
	if probeCfg != nil {
		captureIfaces = probeCfg.Capture.Interfaces
		upd.snmpCheck = snmpCheck(probeCfg)
		host = probeCfg.Probe.Name
	}
	setHostname(host, sys.Management.Interface)
	for _, ifname := range captureIfaces {
		if err := setupCapture(ifname); err != nil {
			log.Printf("capture %s: %v", ifname, err)
		} else {
			log.Printf("capture %s: up, promiscuous, no address, IPv6 and ARP off", ifname)
		}
	}
	netReady := make(chan struct{})
	go func() {
		if err := setupManagement(ctx, sys, netReady); err != nil {
			log.Printf("management %s: %v", sys.Management.Interface, err)
		}
	}()
	select {
	case <-netReady:
	case <-time.After(15 * time.Second):
		log.Printf("management network not configured after 15s; starting anyway")
	}
	if sys.Syslog != "" {
		if w, err := syslog.Dial("udp", sys.Syslog, syslog.LOG_DAEMON|syslog.LOG_INFO, "mira"); err != nil {
			log.Printf("syslog %s: %v", sys.Syslog, err)
		} else {
			log.mu.Lock()
			log.syslog = w
			log.mu.Unlock()
		}
	}
	go setClock(ctx, sys.NTP)
	if sys.WatchdogEnabled() {
		go feedWatchdog(ctx)
	}

	go upd.serve(ctx)

	var svcs []*service
	var probe *service
	if probeCfgFile != "" {
		probe = newService("mira-probe", []string{"--config", probeCfgFile}, console, sys)
		svcs = append(svcs, probe)
	}
	if _, err := os.Stat(filepath.Join(binDir, "mira-collector")); err == nil {
		args := []string{}
		if name, err := collectorConfig(); err != nil {
			log.Printf("collector configuration: %v", err)
		} else if name != "" {
			args = append(args, "--config", name)
		}
		svcs = append(svcs, newService("mira-collector", args, console, sys))
	}
	for _, s := range svcs {
		go s.supervise(ctx)
	}
	log.Printf("services started %.2fs after init start (uptime %.2fs)", time.Since(t0).Seconds(), uptime())
	go upd.judgeTrial(ctx, probe)

	// Wait for a reason to stop: the ACPI power button, Ctrl-Alt-Del
	// (SIGINT), or SIGTERM/SIGUSR2 (reboot) from a management tool.
	go watchPowerButton(stop)
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGUSR2)
	go func() {
		for s := range sigs {
			if s == syscall.SIGTERM {
				stop <- unix.LINUX_REBOOT_CMD_POWER_OFF
			} else {
				stop <- unix.LINUX_REBOOT_CMD_RESTART
			}
		}
	}()
	how := <-stop
	log.Printf("shutting down (%s)", map[int]string{unix.LINUX_REBOOT_CMD_POWER_OFF: "power off", unix.LINUX_REBOOT_CMD_RESTART: "reboot"}[how])
	cancel()
	shutdown(svcs, how)
	return nil
}

// shutdown stops the services (each exports what it holds on SIGTERM),
// syncs and unmounts the writable partitions, then powers off or reboots.
func shutdown(svcs []*service, how int) {
	stopServices(svcs, 60*time.Second)
	log.Printf("services stopped; syncing")
	log.mu.Lock()
	if log.syslog != nil {
		log.syslog.Close()
	}
	log.mu.Unlock()
	unix.Sync()
	unix.Unmount(dataDir, 0)
	unix.Unmount(bootDir, 0)
	unix.Sync()
	if err := unix.Reboot(how); err != nil {
		fmt.Fprintln(os.Stderr, "mira-init: reboot:", err)
	}
	select {}
}

func mountBase() error {
	mounts := []struct{ src, dir, fstype, opts string }{
		{"proc", "/proc", "proc", ""},
		{"sysfs", "/sys", "sysfs", ""},
		{"devtmpfs", "/dev", "devtmpfs", "mode=0755"},
		{"tmpfs", "/run", "tmpfs", "mode=0755"},
		{"tmpfs", "/tmp", "tmpfs", "mode=1777"},
	}
	for _, m := range mounts {
		if err := unix.Mount(m.src, m.dir, m.fstype, unix.MS_NOSUID, m.opts); err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("mount %s: %w", m.dir, err)
		}
	}
	os.MkdirAll(runDir, 0o755)
	// New interfaces come up without IPv6 unless told otherwise; the
	// management interface turns it back on.
	writeSysctl("net/ipv6/conf/default/disable_ipv6", "1")
	return nil
}

func uptime() float64 {
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) != nil {
		return 0
	}
	b, err := os.ReadFile("/proc/uptime")
	if err == nil {
		var f float64
		if _, err := fmt.Sscan(string(b), &f); err == nil {
			return f
		}
	}
	return float64(si.Uptime)
}

func cmdlineValue(key string) string {
	b, _ := os.ReadFile("/proc/cmdline")
	for _, f := range strings.Fields(string(b)) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	return ""
}

// mountLabel mounts the GPT partition named label (PARTNAME in sysfs).
func mountLabel(label, dir, fstype string, flags uintptr, opts string) error {
	dev, err := findPartition(label)
	if err != nil {
		return err
	}
	os.MkdirAll(dir, 0o755)
	if err := unix.Mount(dev, dir, fstype, flags, opts); err != nil {
		return fmt.Errorf("mount %s on %s: %w", dev, dir, err)
	}
	return nil
}

// findPartition waits up to 10 s for a partition named label to appear.
func findPartition(label string) (string, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		ents, _ := os.ReadDir("/sys/class/block")
		for _, e := range ents {
			b, err := os.ReadFile(filepath.Join("/sys/class/block", e.Name(), "uevent"))
			if err != nil {
				continue
			}
			for _, line := range strings.Split(string(b), "\n") {
				if line == "PARTNAME="+label {
					return "/dev/" + e.Name(), nil
				}
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no partition named %s", label)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func loadSystem() (*image.System, error) {
	name := filepath.Join(bootDir, "mira", "system.yaml")
	b, err := os.ReadFile(name)
	if errors.Is(err, os.ErrNotExist) {
		return image.ParseSystem(name, nil)
	}
	if err != nil {
		return nil, err
	}
	return image.ParseSystem(name, b)
}

// prepareProbeConfig picks the probe configuration (the data partition's
// override, else the boot partition's), adds the SNMP state file and
// writes it under /run.
func prepareProbeConfig() (string, *config.Probe, error) {
	name := filepath.Join(dataDir, "mira", "probe.yaml")
	b, err := os.ReadFile(name)
	if errors.Is(err, os.ErrNotExist) {
		name = filepath.Join(bootDir, "mira", "probe.yaml")
		b, err = os.ReadFile(name)
	}
	if err != nil {
		return "", nil, err
	}
	out, cfg, err := image.ProbeConfig(name, b, filepath.Join(dataDir, "snmp", "engine.state"))
	if err != nil {
		return "", nil, err
	}
	file := filepath.Join(runDir, "probe.yaml")
	if err := os.WriteFile(file, out, 0o600); err != nil {
		return "", nil, err
	}
	log.Printf("probe configuration: %s", name)
	return file, cfg, nil
}

// collectorConfig writes the collector's configuration under /run: the
// boot partition's mira/collector.yaml with the store bounded by the data
// partition's size (image.CollectorConfig). "" when there is none.
func collectorConfig() (string, error) {
	name := filepath.Join(bootDir, "mira", "collector.yaml")
	b, err := os.ReadFile(name)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	var st unix.Statfs_t
	var size int64
	if unix.Statfs(dataDir, &st) == nil {
		size = int64(st.Blocks) * st.Bsize
	}
	out, err := image.CollectorConfig(name, b, size)
	if err != nil {
		return "", err
	}
	file := filepath.Join(runDir, "collector.yaml")
	if err := os.WriteFile(file, out, 0o600); err != nil {
		return "", err
	}
	log.Printf("collector configuration: %s (store at most %d MiB)", name, size/4*3>>20)
	return file, nil
}

// setHostname names the box (syslog, the probe's default name): the
// configured probe name, else mira- and the end of the management MAC.
func setHostname(name, mgmt string) {
	if name == "" {
		name = "mira"
		if b, err := os.ReadFile("/sys/class/net/" + mgmt + "/address"); err == nil {
			if mac := strings.ReplaceAll(strings.TrimSpace(string(b)), ":", ""); len(mac) >= 6 {
				name += "-" + mac[len(mac)-6:]
			}
		}
	}
	if err := unix.Sethostname([]byte(name)); err != nil {
		log.Printf("hostname %s: %v", name, err)
	}
}

func writeSysctl(key, value string) error {
	return os.WriteFile(filepath.Join("/proc/sys", key), []byte(value), 0o644)
}

// service runs one program, restarting it with exponential backoff.
type service struct {
	name string
	args []string
	out  io.Writer

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	started time.Time
}

// healthyFor is how long the current process has been running (0 when
// it is not running).
func (s *service) healthyFor() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	select {
	case <-s.done:
		return 0
	default:
	}
	return time.Since(s.started)
}

func newService(name string, args []string, console io.Writer, sys *image.System) *service {
	var out io.Writer = console
	if w, err := newRotating(filepath.Join(dataDir, "log", name+".log"), 4<<20, 3); err == nil {
		out = io.MultiWriter(console, w)
	}
	return &service{name: name, args: args, out: out}
}

func (s *service) supervise(ctx context.Context) {
	backoff := time.Second
	for ctx.Err() == nil {
		cmd := exec.Command(filepath.Join(binDir, s.name), s.args...)
		cmd.Stdout, cmd.Stderr = s.out, s.out
		cmd.Dir = dataDir
		cmd.Env = []string{"PATH=" + binDir, "HOME=" + dataDir, "TZ=UTC"}
		start := time.Now()
		s.mu.Lock()
		err := cmd.Start()
		done := make(chan struct{})
		if err == nil {
			s.cmd, s.done, s.started = cmd, done, time.Now()
		}
		s.mu.Unlock()
		if err != nil {
			log.Printf("%s: %v", s.name, err)
		} else {
			log.Printf("%s started (pid %d, uptime %.2fs)", s.name, cmd.Process.Pid, uptime())
			err = cmd.Wait()
			close(done)
			log.Printf("%s exited after %s: %v", s.name, time.Since(start).Round(time.Millisecond), err)
		}
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > time.Minute {
			backoff = time.Second
		}
		log.Printf("%s: restarting in %s", s.name, backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, time.Minute)
	}
}

// stopServices stops the services one after the other, in the order
// they were started: mira-probe first, as it exports every pending flow
// when it stops, and an all-in-one box's mira-collector, which receives
// that export, after it. Stopped together, the collector was gone before
// the probe's last records reached it (lost at every power-off).
func stopServices(svcs []*service, timeout time.Duration) {
	for _, s := range svcs {
		s.stop(timeout)
	}
}

// stop sends SIGTERM and waits for the exit (SIGKILL after timeout).
func (s *service) stop(timeout time.Duration) {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		log.Printf("%s stopped", s.name)
	case <-time.After(timeout):
		log.Printf("%s did not stop in %s; killing it", s.name, timeout)
		cmd.Process.Kill()
		<-done
	}
}
