//go:build linux

package main

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Linux input events (linux/input.h, input-event-codes.h).
const (
	evKey    = 0x01
	keyPower = 116
)

// watchPowerButton waits for KEY_POWER from the ACPI power button's input
// device (drivers/acpi/button.c registers "Power Button" input devices;
// evdev exposes them as /dev/input/eventN) and asks for a power-off.
func watchPowerButton(stop chan<- int) {
	var devs []string
	deadline := time.Now().Add(10 * time.Second)
	for len(devs) == 0 && time.Now().Before(deadline) {
		ents, _ := filepath.Glob("/sys/class/input/event*")
		for _, e := range ents {
			name, err := os.ReadFile(filepath.Join(e, "device", "name"))
			if err != nil || !strings.Contains(string(name), "Power Button") {
				continue
			}
			devs = append(devs, "/dev/input/"+filepath.Base(e))
		}
		if len(devs) == 0 {
			time.Sleep(250 * time.Millisecond)
		}
	}
	if len(devs) == 0 {
		log.Printf("no ACPI power button input device; power off with SIGTERM to PID 1")
		return
	}
	for _, d := range devs {
		go func() {
			f, err := os.Open(d)
			if err != nil {
				log.Printf("power button %s: %v", d, err)
				return
			}
			defer f.Close()
			log.Printf("power button: %s", d)
			// struct input_event on 64-bit: timeval (16), type u16, code u16, value s32.
			var ev [24]byte
			for {
				if _, err := f.Read(ev[:]); err != nil {
					log.Printf("power button %s: %v", d, err)
					return
				}
				typ := binary.LittleEndian.Uint16(ev[16:])
				code := binary.LittleEndian.Uint16(ev[18:])
				value := int32(binary.LittleEndian.Uint32(ev[20:]))
				if typ == evKey && code == keyPower && value == 1 {
					log.Printf("power button pressed")
					stop <- unix.LINUX_REBOOT_CMD_POWER_OFF
				}
			}
		}()
	}
}

// feedWatchdog keeps the hardware watchdog (when the kernel has a driver
// for it) from resetting the box while PID 1 runs. If init hangs, the
// box resets.
func feedWatchdog(ctx context.Context) {
	f, err := os.OpenFile("/dev/watchdog", os.O_WRONLY, 0)
	if err != nil {
		if !os.IsNotExist(err) {
			log.Printf("watchdog: %v", err)
		}
		return
	}
	timeout, err := unix.IoctlGetInt(int(f.Fd()), unix.WDIOC_GETTIMEOUT)
	if err != nil || timeout <= 0 {
		timeout = 30
	}
	period := time.Duration(timeout) * time.Second / 3
	log.Printf("watchdog: /dev/watchdog, timeout %ds, fed every %s", timeout, period)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		if _, err := f.Write([]byte{0}); err != nil {
			log.Printf("watchdog: %v", err)
		}
		select {
		case <-ctx.Done():
			// Keep the device open: while shutting down the watchdog
			// still resets a box that hangs.
			return
		case <-t.C:
		}
	}
}
