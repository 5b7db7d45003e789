package agent

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"
)

var benchIfNames = []string{"eth0", "eth1", "eth2", "eth3"}

// benchProbe is a provider with a table comparable to what snmpd serves.
func benchProbe() Provider {
	return ProviderFunc(func(s *Snapshot) {
		s.Name = "bench"
		s.Interfaces = s.Interfaces[:0]
		for i := 0; i < 4; i++ {
			s.Interfaces = append(s.Interfaces, CaptureInterface{Name: benchIfNames[i], LinkType: 1, Packets: 1e9 + uint64(i)})
		}
		s.Symptoms = s.Symptoms[:0]
		for i := 1; i <= 50; i++ {
			s.Symptoms = append(s.Symptoms, Symptom{ID: uint32(i), Name: "S", Occurrences: uint64(i) << 33})
		}
	})
}

func benchClient(b *testing.B, addr string, v3 bool) *gosnmp.GoSNMP {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		b.Fatal(err)
	}
	pn, _ := strconv.Atoi(port)
	g := &gosnmp.GoSNMP{Target: host, Port: uint16(pn), Version: gosnmp.Version2c, Community: "public",
		Timeout: 2 * time.Second, Retries: 1, MaxOids: 60}
	if v3 {
		g.Version = gosnmp.Version3
		g.SecurityModel = gosnmp.UserSecurityModel
		g.MsgFlags = gosnmp.AuthPriv
		g.SecurityParameters = &gosnmp.UsmSecurityParameters{UserName: "ops",
			AuthenticationProtocol: gosnmp.SHA256, AuthenticationPassphrase: "ops-auth-pass",
			PrivacyProtocol: gosnmp.AES, PrivacyPassphrase: "ops-priv-pass"}
	}
	if err := g.Connect(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { g.Conn.Close() })
	return g
}

// BenchmarkLoopback measures GET and GETBULK requests per second over
// loopback, for the agent and for net-snmp's snmpd in the same run, with
// the same client (gosnmp). GET asks sysName.0 and sysUpTime.0; GETBULK
// asks 20 repetitions from the system group, which both agents serve.
func BenchmarkLoopback(b *testing.B) {
	a, err := New(testConfig(), benchProbe(), nil)
	if err != nil {
		b.Fatal(err)
	}
	servers := []struct{ name, addr string }{{"mira", startAgent(b, a)}, {"snmpd", startSnmpd(b, "")}}
	for _, srv := range servers {
		for _, v3 := range []bool{false, true} {
			ver := "v2c"
			if v3 {
				ver = "v3authPriv"
			}
			b.Run(fmt.Sprintf("%s/%s/get", srv.name, ver), func(b *testing.B) {
				g := benchClient(b, srv.addr, v3)
				b.ReportAllocs()
				b.ResetTimer()
				start := time.Now()
				for i := 0; i < b.N; i++ {
					r, err := g.Get([]string{".1.3.6.1.2.1.1.5.0", ".1.3.6.1.2.1.1.3.0"})
					if err != nil || len(r.Variables) != 2 || r.Variables[0].Type != gosnmp.OctetString {
						b.Fatalf("get: %v %+v", err, r)
					}
				}
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
			})
			b.Run(fmt.Sprintf("%s/%s/bulk20", srv.name, ver), func(b *testing.B) {
				g := benchClient(b, srv.addr, v3)
				b.ReportAllocs()
				b.ResetTimer()
				start := time.Now()
				for i := 0; i < b.N; i++ {
					r, err := g.GetBulk([]string{".1.3.6.1.2.1.1"}, 0, 20)
					if err != nil || len(r.Variables) != 20 {
						b.Fatalf("bulk: %v %+v", err, r)
					}
				}
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
			})
		}
	}
}

// BenchmarkHandle measures the agent's own work per request, without
// the network: parse, snapshot, view, response.
func BenchmarkHandle(b *testing.B) {
	a, err := New(testConfig(), benchProbe(), nil)
	if err != nil {
		b.Fatal(err)
	}
	g := &gosnmp.GoSNMP{Version: gosnmp.Version2c, Community: "public"}
	get, _ := g.SnmpEncodePacket(gosnmp.GetRequest, []gosnmp.SnmpPDU{{Name: ".1.3.6.1.4.1.32473.1.1.2.1.1.5.1", Type: gosnmp.Null}}, 0, 0)
	bulk, _ := g.SnmpEncodePacket(gosnmp.GetBulkRequest, []gosnmp.SnmpPDU{{Name: ".1.3.6.1.4.1.32473.1.1.5", Type: gosnmp.Null}}, 0, 20)
	src := netip.MustParseAddrPort("127.0.0.1:1")
	for _, tc := range []struct {
		name string
		req  []byte
	}{{"v2c-get", get}, {"v2c-bulk20", bulk}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if a.Handle(tc.req, src) == nil {
					b.Fatal("no response")
				}
			}
		})
	}
}
