//go:build linux

package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"
	"unsafe"

	"github.com/beevik/ntp"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/mira-project/mira/image"
)

// setupCapture brings a capture port up silent: IPv6 off before the link
// is up (no router solicitations, MLD reports or DAD), ARP off, no
// address, promiscuous, and the receive offloads that merge frames
// (GRO, LRO) off so the probe sees the frames as they were on the wire.
func setupCapture(ifname string) error {
	link, err := waitLink(ifname, 10*time.Second)
	if err != nil {
		return err
	}
	if err := writeSysctl("net/ipv6/conf/"+ifname+"/disable_ipv6", "1"); err != nil {
		return fmt.Errorf("disable IPv6: %w", err)
	}
	if err := netlink.LinkSetARPOff(link); err != nil {
		return fmt.Errorf("ARP off: %w", err)
	}
	addrs, _ := netlink.AddrList(link, netlink.FAMILY_ALL)
	for _, a := range addrs {
		netlink.AddrDel(link, &a)
	}
	if err := netlink.SetPromiscOn(link); err != nil {
		return fmt.Errorf("promiscuous: %w", err)
	}
	for _, off := range []struct {
		name string
		set  func(string) error
	}{{"GRO", setGROOff}, {"LRO", setLROOff}} {
		if err := off.set(ifname); err != nil {
			log.Printf("capture %s: %s off: %v", ifname, off.name, err)
		}
	}
	return netlink.LinkSetUp(link)
}

func waitLink(ifname string, d time.Duration) (netlink.Link, error) {
	deadline := time.Now().Add(d)
	for {
		link, err := netlink.LinkByName(ifname)
		if err == nil {
			return link, nil
		}
		if time.Now().After(deadline) {
			return nil, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ethtool ioctls (linux/ethtool.h).
const (
	ethtoolGFLAGS = 0x25
	ethtoolSFLAGS = 0x26
	ethtoolSGRO   = 0x2c
	ethFlagLRO    = 1 << 15
)

type ethtoolValue struct{ cmd, data uint32 }

type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data uintptr
	_    [16]byte
}

func ethtool(ifname string, v *ethtoolValue) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var ifr ifreqData
	copy(ifr.name[:], ifname)
	ifr.data = uintptr(unsafe.Pointer(v))
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	if errno != 0 {
		return errno
	}
	return nil
}

func setGROOff(ifname string) error {
	return ethtool(ifname, &ethtoolValue{cmd: ethtoolSGRO, data: 0})
}

func setLROOff(ifname string) error {
	v := ethtoolValue{cmd: ethtoolGFLAGS}
	if err := ethtool(ifname, &v); err != nil {
		return err
	}
	if v.data&ethFlagLRO == 0 {
		return nil
	}
	return ethtool(ifname, &ethtoolValue{cmd: ethtoolSFLAGS, data: v.data &^ ethFlagLRO})
}

// setupManagement configures the management interface: a static address
// or DHCP (renewed in the background). ready is closed once it has an
// address.
func setupManagement(ctx context.Context, sys *image.System, ready chan struct{}) error {
	ifname := sys.Management.Interface
	lo, err := netlink.LinkByName("lo")
	if err == nil {
		netlink.LinkSetUp(lo)
	}
	link, err := waitLink(ifname, 10*time.Second)
	if err != nil {
		close(ready)
		return err
	}
	writeSysctl("net/ipv6/conf/"+ifname+"/disable_ipv6", "0")
	if err := netlink.LinkSetUp(link); err != nil {
		close(ready)
		return err
	}
	if !sys.DHCPEnabled() {
		p := netip.MustParsePrefix(sys.Management.Address)
		var gw net.IP
		if sys.Management.Gateway != "" {
			gw = net.ParseIP(sys.Management.Gateway)
		}
		var dns []net.IP
		for _, d := range sys.Management.DNS {
			dns = append(dns, net.ParseIP(d))
		}
		err := configure(link, &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}, gw, dns)
		close(ready)
		if err == nil {
			log.Printf("management %s: static %s gateway %s", ifname, p, sys.Management.Gateway)
		}
		return err
	}
	readyOnce := func() {
		select {
		case <-ready:
		default:
			close(ready)
		}
	}
	defer readyOnce()
	var lease *nclient4.Lease
	backoff := time.Second
	for ctx.Err() == nil {
		if lease == nil {
			lease, err = dhcpRequest(ctx, ifname)
			if err != nil {
				log.Printf("management %s: DHCP: %v; retrying in %s", ifname, err, backoff)
				select {
				case <-ctx.Done():
				case <-time.After(backoff):
				}
				backoff = min(backoff*2, 30*time.Second)
				continue
			}
			backoff = time.Second
			ack := lease.ACK
			ipn := &net.IPNet{IP: ack.YourIPAddr, Mask: ack.SubnetMask()}
			var gw net.IP
			if r := ack.Router(); len(r) > 0 {
				gw = r[0]
			}
			if err := configure(link, ipn, gw, ack.DNS()); err != nil {
				log.Printf("management %s: %v", ifname, err)
			} else {
				log.Printf("management %s: DHCP %s gateway %v dns %v (uptime %.2fs)", ifname, ipn, gw, ack.DNS(), uptime())
			}
			readyOnce()
		}
		// Renew at half the lease time.
		t := lease.ACK.IPAddressLeaseTime(time.Hour) / 2
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(t):
		}
		c, err := nclient4.New(ifname, nclient4.WithTimeout(5*time.Second))
		if err != nil {
			continue
		}
		nl, err := c.Renew(ctx, lease)
		c.Close()
		if err != nil {
			log.Printf("management %s: DHCP renew: %v", ifname, err)
			lease = nil
			continue
		}
		lease = nl
	}
	return nil
}

func dhcpRequest(ctx context.Context, ifname string) (*nclient4.Lease, error) {
	c, err := nclient4.New(ifname, nclient4.WithTimeout(3*time.Second), nclient4.WithRetry(3))
	if err != nil {
		return nil, err
	}
	defer c.Close()
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	return c.Request(rctx)
}

func configure(link netlink.Link, ipn *net.IPNet, gw net.IP, dns []net.IP) error {
	if err := netlink.AddrReplace(link, &netlink.Addr{IPNet: ipn}); err != nil {
		return fmt.Errorf("address %s: %w", ipn, err)
	}
	if gw != nil {
		r := &netlink.Route{LinkIndex: link.Attrs().Index, Gw: gw, Dst: nil}
		if err := netlink.RouteReplace(r); err != nil {
			return fmt.Errorf("default route via %s: %w", gw, err)
		}
	}
	if len(dns) > 0 {
		var b strings.Builder
		for _, d := range dns {
			fmt.Fprintf(&b, "nameserver %s\n", d)
		}
		if err := os.WriteFile("/run/resolv.conf", []byte(b.String()), 0o644); err != nil {
			return err
		}
		unix.Unmount("/etc/resolv.conf", 0)
		if err := unix.Mount("/run/resolv.conf", "/etc/resolv.conf", "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("resolv.conf: %w", err)
		}
	}
	return nil
}

// setClock queries the NTP servers until one answers and steps the clock.
// Best effort: the probe runs on the hardware clock meanwhile.
func setClock(ctx context.Context, servers []string) {
	if len(servers) == 0 {
		return
	}
	backoff := 5 * time.Second
	for ctx.Err() == nil {
		for _, s := range servers {
			resp, err := ntp.QueryWithOptions(s, ntp.QueryOptions{Timeout: 3 * time.Second})
			if err == nil {
				err = resp.Validate()
			}
			if err != nil {
				log.Printf("ntp %s: %v", s, err)
				continue
			}
			now := time.Now().Add(resp.ClockOffset)
			tv := unix.NsecToTimeval(now.UnixNano())
			if err := unix.Settimeofday(&tv); err != nil {
				log.Printf("ntp: set clock: %v", err)
				return
			}
			log.Printf("ntp %s: clock stepped by %s", s, resp.ClockOffset)
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 10*time.Minute)
	}
}
