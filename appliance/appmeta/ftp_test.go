package appmeta

import (
	"strconv"
	"strings"
	"testing"
)

func TestFTPDataPort(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int // -1: none
	}{
		{"PORT 192,168,1,2,7,138\r", 7*256 + 138},
		{"port 10,0,0,1,195,80", 195*256 + 80},
		{"PORT  10,0,0,1,0,21\r", 21},
		{"PORT 10,0,0,1,0,0\r", -1},    // port 0
		{"PORT 10,0,0,256,4,1\r", -1},  // a byte out of range
		{"PORT 10,0,0,1,4\r", -1},      // five numbers
		{"PORT 10,0,0,1,4,1234\r", -1}, // four digits
		{"PORTS 10,0,0,1,4,1\r", -1},   // another command
		{"EPRT |1|132.235.1.2|6275|\r", 6275},
		{"eprt |2|1080::8:800:200C:417A|5282|", 5282},
		{"EPRT !1!10.0.0.1!80!", 80},
		{"EPRT |1|10.0.0.1|65536|", -1},
		{"EPRT |1||80|", -1}, // no address
		{"EPRT |1|10.0.0.1|80", -1},
		{"227 Entering Passive Mode (192,168,150,90,195,149).\r", 195*256 + 149},
		{"227 Entering Passive Mode 192,168,150,90,195,149\r", 195*256 + 149},
		{"227 =10,0,0,1,4,1", 4*256 + 1},
		{"227 Entering Passive Mode (192,168,150,90,195)\r", -1},
		{"229 Entering Extended Passive Mode (|||6446|)\r", 6446},
		{"229 Entering Extended Passive Mode (!!!6446!)", 6446},
		{"229 Entering Extended Passive Mode (|1|6446|)", -1}, // fields must be empty
		{"229 Entering Extended Passive Mode (|||0|)", -1},
		{"229 Entering Extended Passive Mode", -1},
		{"226 Transfer complete (1,2,3,4,5,6)", -1},
		{"", -1},
	} {
		port, ok := FTPDataPort([]byte(c.in))
		got := -1
		if ok {
			got = int(port)
		}
		if got != c.want {
			t.Errorf("%q: got %d, want %d", c.in, got, c.want)
		}
	}
}

func TestFTPDataPorts(t *testing.T) {
	seg := "150 Opening\r\n227 Entering Passive Mode (10,0,0,1,4,1)\r\n229 Entering Extended Passive Mode (|||2000|)\r\nPORT 10,0,0,2,0,20"
	var got []string
	FTPDataPorts([]byte(seg), func(p uint16) { got = append(got, strconv.Itoa(int(p))) })
	if strings.Join(got, ",") != "1025,2000,20" {
		t.Errorf("got %v", got)
	}
	n := testing.AllocsPerRun(100, func() { FTPDataPorts([]byte(seg), func(uint16) {}) })
	if n != 0 {
		t.Errorf("FTPDataPorts allocates %v times", n)
	}
}

func TestIsFTPControl(t *testing.T) {
	for in, want := range map[string]bool{
		"220 ProFTPD 1.3.5 Server (Debian) [::ffff:10.0.0.1]\r\n": true,
		"220-Welcome to the FTP archive\r\n":                      true,
		"220 mail.example.com ESMTP Postfix\r\n":                  false,
		"220 smtp\r\n220 ftp":                                     false, // only the first line
		"331 Password required for ftp\r\n":                       false,
		"220":                                                     false,
	} {
		if got := IsFTPControl([]byte(in)); got != want {
			t.Errorf("%q: %v, want %v", in, got, want)
		}
	}
}

// FuzzFTPDataPorts: no panic, and every port reported is one a line of
// the input announces by itself.
func FuzzFTPDataPorts(f *testing.F) {
	f.Add([]byte("227 Entering Passive Mode (192,168,150,90,195,149).\r\nPORT 1,2,3,4,5,6\r\n"))
	f.Add([]byte("229 Entering Extended Passive Mode (|||6446|)\r\nEPRT |2|::1|80|\n"))
	f.Add([]byte("220 FTP\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		IsFTPControl(b)
		var ports []uint16
		FTPDataPorts(b, func(p uint16) { ports = append(ports, p) })
		var again []uint16
		for _, line := range strings.Split(string(b), "\n") {
			if p, ok := FTPDataPort([]byte(line)); ok {
				if p == 0 {
					t.Fatalf("port 0 from %q", line)
				}
				again = append(again, p)
			}
		}
		if len(ports) != len(again) {
			t.Fatalf("%q: %v by segment, %v by line", b, ports, again)
		}
		for i := range ports {
			if ports[i] != again[i] {
				t.Fatalf("%q: %v by segment, %v by line", b, ports, again)
			}
		}
	})
}
