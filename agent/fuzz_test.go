package agent

import (
	"net/netip"
	"testing"

	"github.com/gosnmp/gosnmp"
)

const fuzzEngineID = "80007ed905aabbccddeeff0011"

func fuzzAgent(t testing.TB) *Agent {
	cfg := testConfig()
	cfg.EngineID = fuzzEngineID
	a, err := New(cfg, ProviderFunc(func(s *Snapshot) {
		s.Name = "fuzz"
		s.Interfaces = append(s.Interfaces[:0], CaptureInterface{Name: "eth1", Packets: 1 << 40,
			DecodeErrors: []ReasonCount{{"truncated", 3}}})
		s.Symptoms = append(s.Symptoms[:0], Symptom{ID: 9, Name: "HTTP"}, Symptom{ID: 9, Name: "dup"}, Symptom{ID: 0})
		s.Exporters = append(s.Exporters[:0], Exporter{Address: "udp://192.0.2.1:4739"})
	}), nil)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// seedRequests builds valid requests of every kind the agent takes.
func seedRequests(t testing.TB, a *Agent) [][]byte {
	var out [][]byte
	vars := []gosnmp.SnmpPDU{{Name: ".1.3.6.1.4.1.32473.1.1.2.1.1.5.1", Type: gosnmp.Null}, {Name: ".1.3.6.1.2.1.1", Type: gosnmp.Null}}
	for _, v := range []gosnmp.SnmpVersion{gosnmp.Version1, gosnmp.Version2c} {
		g := &gosnmp.GoSNMP{Version: v, Community: "public"}
		for _, pt := range []gosnmp.PDUType{gosnmp.GetRequest, gosnmp.GetNextRequest, gosnmp.GetBulkRequest, gosnmp.SetRequest} {
			if v == gosnmp.Version1 && pt == gosnmp.GetBulkRequest {
				continue // not in SNMPv1
			}
			b, err := g.SnmpEncodePacket(pt, vars, 1, 5)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b)
		}
	}
	boots, etime := a.engine.bootsTime()
	for _, lvl := range []gosnmp.SnmpV3MsgFlags{gosnmp.NoAuthNoPriv, gosnmp.AuthNoPriv, gosnmp.AuthPriv} {
		sp := &gosnmp.UsmSecurityParameters{UserName: "ops", AuthoritativeEngineID: a.engine.idStr,
			AuthoritativeEngineBoots: boots, AuthoritativeEngineTime: etime,
			AuthenticationProtocol: gosnmp.NoAuth, PrivacyProtocol: gosnmp.NoPriv}
		if lvl&gosnmp.AuthNoPriv != 0 {
			sp.AuthenticationProtocol, sp.AuthenticationPassphrase = gosnmp.SHA256, "ops-auth-pass"
		}
		if lvl == gosnmp.AuthPriv {
			sp.PrivacyProtocol, sp.PrivacyPassphrase = gosnmp.AES, "ops-priv-pass"
			sp.PrivacyParameters = []byte{1, 2, 3, 4, 5, 6, 7, 8}
		}
		pkt := &gosnmp.SnmpPacket{Version: gosnmp.Version3, MsgFlags: lvl | gosnmp.Reportable,
			SecurityModel: gosnmp.UserSecurityModel, SecurityParameters: sp, MsgID: 7, RequestID: 9,
			MsgMaxSize: 65507, ContextEngineID: a.engine.idStr, PDUType: gosnmp.GetBulkRequest,
			MaxRepetitions: 3, Variables: vars}
		if err := sp.InitSecurityKeys(); err != nil {
			t.Fatal(err)
		}
		b, err := pkt.MarshalMsg()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	disc := &gosnmp.SnmpPacket{Version: gosnmp.Version3, MsgFlags: gosnmp.Reportable, SecurityModel: gosnmp.UserSecurityModel,
		SecurityParameters: &gosnmp.UsmSecurityParameters{}, MsgID: 1, MsgMaxSize: 65507, PDUType: gosnmp.GetRequest}
	b, err := disc.MarshalMsg()
	if err != nil {
		t.Fatal(err)
	}
	return append(out, b)
}

// TestSeedsAnswered makes sure the fuzz seeds are real requests: each
// gets an answer, and the v3 authPriv one a real response.
func TestSeedsAnswered(t *testing.T) {
	a := fuzzAgent(t)
	for i, req := range seedRequests(t, a) {
		if a.Handle(req, netip.MustParseAddrPort("127.0.0.1:999")) == nil {
			t.Errorf("seed %d got no answer", i)
		}
	}
	if a.stats.usm[usmUnknownEngineIDs].Load() != 1 {
		t.Errorf("discovery seed not reported")
	}
}

// FuzzHandle feeds arbitrary messages to the request path. It must never
// panic (even inside gosnmp), and must never answer a community request
// from a source outside the community's prefixes, nor give a v3 answer
// with data to a request that did not authenticate.
func FuzzHandle(f *testing.F) {
	a := fuzzAgent(f)
	for _, s := range seedRequests(f, a) {
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, msg []byte, inside bool) {
		src := netip.MustParseAddrPort("127.0.0.1:999")
		if !inside {
			src = netip.MustParseAddrPort("198.51.100.1:999")
		}
		in := append([]byte(nil), msg...)
		resp := a.Handle(in, src)
		if n := a.stats.panics.Load(); n != 0 {
			t.Fatalf("codec panicked on %x", msg)
		}
		if resp == nil {
			return
		}
		var h msgHeader
		if e := parseHeader(resp, &h); e != nil {
			t.Fatalf("unparsable response %x: %v", resp, e.toError())
		}
		if h.version != 3 {
			if !inside {
				t.Fatalf("answered community request from outside: %x", msg)
			}
			dec := gosnmp.GoSNMP{Version: gosnmp.SnmpVersion(h.version)}
			p, err := dec.SnmpDecodePacket(resp)
			if err != nil {
				t.Fatalf("undecodable response: %v", err)
			}
			if p.Community != "public" || p.PDUType != gosnmp.GetResponse {
				t.Fatalf("response with community %q type %v", p.Community, p.PDUType)
			}
			return
		}
		if h.flags&0x01 != 0 {
			// Authenticated responses need the user's key, which only an
			// authentic request can have proven.
			if !authentic(a, msg) {
				t.Fatalf("authenticated response to unauthenticated request %x", msg)
			}
			return
		}
		tag, errStatus, ok := plainPDU(resp, &h)
		if !ok {
			t.Fatalf("unparsable v3 response %x", resp)
		}
		if tag != byte(gosnmp.Report) && errStatus == 0 {
			t.Fatalf("unauthenticated v3 answer with data: %x", resp)
		}
	})
}

// plainPDU returns the PDU type and error-status of an unencrypted v3
// message.
func plainPDU(b []byte, h *msgHeader) (byte, int64, bool) {
	tag, s, _, err := readTLV(b[:h.msgEnd], h.dataOff, "ScopedPDU")
	if err != nil || tag != 0x30 {
		return 0, 0, false
	}
	_, _, p, err := readOctets(b, s, "contextEngineID")
	if err != nil {
		return 0, 0, false
	}
	_, _, p, err = readOctets(b, p, "contextName")
	if err != nil {
		return 0, 0, false
	}
	tag, ps, _, err := readTLV(b, p, "PDU")
	if err != nil {
		return 0, 0, false
	}
	_, q, err := readInt(b, ps, "request-id")
	if err != nil {
		return 0, 0, false
	}
	es, _, err := readInt(b, q, "error-status")
	if err != nil {
		return 0, 0, false
	}
	return tag, es, true
}

// authentic reports whether msg carries a valid digest for its user.
func authentic(a *Agent, msg []byte) bool {
	var h msgHeader
	if parseHeader(msg, &h) != nil || h.version != 3 {
		return false
	}
	u := a.users[string(h.user)]
	if u == nil {
		return false
	}
	b := append([]byte(nil), msg...)
	var hh msgHeader
	parseHeader(b, &hh)
	return u.checkDigest(b, &hh)
}

func FuzzParseHeader(f *testing.F) {
	a := fuzzAgent(f)
	for _, s := range seedRequests(f, a) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		var h msgHeader
		if e := parseHeader(msg, &h); e != nil {
			de := e.toError()
			if de.Offset < 0 || de.Offset > len(msg) || de.Reason == "" {
				t.Fatalf("bad error %+v", de)
			}
			return
		}
		if h.msgEnd > len(msg) || (h.version == 3 && (h.authEnd > h.msgEnd || h.dataOff >= h.msgEnd)) {
			t.Fatalf("header points outside the message: %+v", h)
		}
	})
}
