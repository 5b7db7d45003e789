package meter

import (
	"strings"
	"testing"

	"github.com/mira-project/mira/appliance/decode"
	"github.com/mira-project/mira/appliance/symptom"
	"github.com/mira-project/mira/flow"
)

const testDB = `
version: 1
symptoms:
  - name: MAIL
    description: test
    patterns:
      - {content: "RCPT TO:", nocase: true}
      - {content: "EHLO ", anchor: start}
`

func seg(seq uint32, flags uint8, payload string) decode.Packet {
	p := pkt(40001, 25, flags, 40+len(payload))
	p.TCPSeq = seq
	p.Payload = []byte(payload)
	p.PayloadLen = len(payload)
	return p
}

func scanRecord(t *testing.T, segs ...decode.Packet) (flow.Record, Stats) {
	t.Helper()
	db, err := symptom.Parse("test.yaml", []byte(testDB))
	if err != nil {
		t.Fatal(err)
	}
	var c collect
	tab := New(&Config{Symptoms: db}, c.sink)
	for i := range segs {
		tab.Add(&segs[i], int64(i)*1000, 0)
	}
	st := tab.Stats()
	tab.Flush()
	if len(c.recs) != 1 {
		t.Fatalf("%d records", len(c.recs))
	}
	return c.recs[0], st
}

func count(r flow.Record) uint32 {
	var n uint32
	for _, s := range r.Symptoms {
		n += s.Count
	}
	return n
}

func TestScanAcrossSegmentsOnce(t *testing.T) {
	r, st := scanRecord(t,
		seg(1000, 0x02, ""),
		seg(1001, 0x18, "EHLO a\r\nMAIL FROM:<x>\r\nRC"),
		seg(1001+25, 0x18, "PT TO:<y>\r\n"),
	)
	if count(r) != 2 {
		t.Errorf("got %d occurrences (%v), want 2: EHLO at start and RCPT TO split across segments", count(r), r.Symptoms)
	}
	if st.ScanBytes != 25+11 || st.ScanGaps != 0 {
		t.Errorf("stats %+v", st)
	}
	if r.ScannedOctets != 25+11 {
		t.Errorf("record: %d octets scanned, want 36", r.ScannedOctets)
	}
}

func TestScanRetransmissionNotCounted(t *testing.T) {
	r, st := scanRecord(t,
		seg(1000, 0x02, ""),
		seg(1001, 0x18, "xx RCPT TO:<y>\r\n"),
		seg(1001, 0x18, "xx RCPT TO:<y>\r\n"), // retransmitted
	)
	if count(r) != 1 || st.ScanRetrans != 1 {
		t.Errorf("got %d occurrences, %d retransmissions; want 1, 1", count(r), st.ScanRetrans)
	}
}

func TestScanGapResets(t *testing.T) {
	// The second half of the pattern arrives after a gap: no match.
	r, st := scanRecord(t,
		seg(1000, 0x02, ""),
		seg(1001, 0x18, "xx RCPT"),
		seg(1001+7+100, 0x18, " TO:<y>\r\n"),
	)
	if count(r) != 0 || st.ScanGaps != 1 {
		t.Errorf("got %d occurrences, %d gaps; want 0, 1", count(r), st.ScanGaps)
	}
}

func TestScanMidStreamNoStartAnchor(t *testing.T) {
	// Joined mid-stream: "EHLO " here is not at the start of the payload.
	r, _ := scanRecord(t, seg(5000, 0x18, "EHLO x\r\n"))
	if count(r) != 0 {
		t.Errorf("start-anchored pattern fired mid-stream: %v", r.Symptoms)
	}
}

func TestScanFastClassSkips(t *testing.T) {
	db, _ := symptom.Parse("test.yaml", []byte(testDB))
	var c collect
	tab := New(&Config{Symptoms: db, FastClass: func(k *flow.Key) uint16 {
		if k.Dport == 25 {
			return 7
		}
		return 0
	}}, c.sink)
	p := seg(1001, 0x18, "RCPT TO:<y>\r\n")
	tab.Add(&p, 0, 0)
	st := tab.Stats()
	tab.Flush()
	if c.recs[0].Category != 7 || len(c.recs[0].Symptoms) != 0 || st.ScanBytes != 0 || st.FastClassed != 1 {
		t.Errorf("record %+v stats %+v", c.recs[0], st)
	}
}

func TestScanDoesNotAllocate(t *testing.T) {
	db, _ := symptom.Parse("test.yaml", []byte(testDB))
	tab := New(&Config{Symptoms: db}, func([]flow.Record) {})
	p := seg(1001, 0x18, "some payload with RCPT TO: inside, and more text after it")
	allocs := testing.AllocsPerRun(1000, func() {
		tab.Add(&p, 1, 0)
		p.TCPSeq += uint32(len(p.Payload))
	})
	if allocs > 0 {
		t.Errorf("Add with scanning allocates %.1f per packet", allocs)
	}
}

const tlsDB = `
version: 1
tls_bypass: TLS
symptoms:
  - name: TLS
    description: test
    patterns:
      - {value: "16 03 00 00 00 01", mask: "FF FF FC 00 00 FF", anchor: start}
  - name: WEB
    description: test
    patterns:
      - {content: "GET /"}
`

// tlsRecords meters one TCP direction of segments with db and returns its
// record and the table's counters.
func tlsRecord(t *testing.T, yaml string, payloads ...string) (flow.Record, Stats) {
	t.Helper()
	db, err := symptom.Parse("tls.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	var c collect
	tab := New(&Config{Symptoms: db}, c.sink)
	segs := []decode.Packet{seg(1000, 0x02, "")}
	seq := uint32(1001)
	for _, s := range payloads {
		segs = append(segs, seg(seq, 0x18, s))
		seq += uint32(len(s))
	}
	for i := range segs {
		tab.Add(&segs[i], int64(i)*1000, 0)
	}
	st := tab.Stats()
	tab.Flush()
	if len(c.recs) != 1 {
		t.Fatalf("%d records", len(c.recs))
	}
	return c.recs[0], st
}

func TestScanTLSBypass(t *testing.T) {
	hello := "\x16\x03\x01\x00\x40\x01\x00\x00\x3c\x03\x03" + string(make([]byte, 58))
	appData := "\x17\x03\x03\x00\x20GET / inside the ciphertext....."
	// After a handshake the database saw, application data ends the scan.
	r, st := tlsRecord(t, tlsDB, hello, appData, "GET / more")
	if len(r.Symptoms) != 1 || r.Symptoms[0].ID != 1 || r.Symptoms[0].Count != 1 {
		t.Errorf("symptoms %v, want the handshake only", r.Symptoms)
	}
	if st.ScanBypassed != 1 || st.ScanBytes != uint64(len(hello)) {
		t.Errorf("bypassed %d, scanned %d bytes; want 1, %d", st.ScanBypassed, st.ScanBytes, len(hello))
	}
	// The record says how much was scanned: the handshake, not the
	// ciphertext after it.
	if r.ScannedOctets != uint64(len(hello)) {
		t.Errorf("record: %d octets scanned, want %d", r.ScannedOctets, len(hello))
	}
	// A flight whose ciphertext starts inside its first segment (TLS 1.3
	// ServerHello, ChangeCipherSpec, encrypted records) is scanned up to
	// the application-data record, then bypassed.
	flight := hello + "\x14\x03\x03\x00\x01\x01" + appData
	r, st = tlsRecord(t, tlsDB, flight, "GET / more")
	if len(r.Symptoms) != 1 || r.Symptoms[0].ID != 1 || r.Symptoms[0].Count != 1 {
		t.Errorf("flight: symptoms %v, want the handshake only", r.Symptoms)
	}
	if want := uint64(len(hello) + 6); st.ScanBypassed != 1 || r.ScannedOctets != want {
		t.Errorf("flight: bypassed %d, %d octets scanned; want 1, %d", st.ScanBypassed, r.ScannedOctets, want)
	}
	// The same flight without a handshake the database knows is scanned
	// whole, and on.
	r, st = tlsRecord(t, tlsDB, "\x16\x03\x01\x00\x05hello"+"\x14\x03\x03\x00\x01\x01"+appData, "GET / more")
	if count(r) != 2 || st.ScanBypassed != 0 {
		t.Errorf("flight without handshake: %v, bypassed %d; want 2 GET /, none bypassed", r.Symptoms, st.ScanBypassed)
	}
	// Records that run past the segment leave it scanned.
	r, st = tlsRecord(t, tlsDB, hello+"\x16\x03\x03\x40\x00GET / in a certificate", appData)
	if count(r) != 2 || st.ScanBypassed != 1 {
		t.Errorf("long record: %v, bypassed %d; want the handshake and GET /, then bypassed", r.Symptoms, st.ScanBypassed)
	}
	// Without a handshake, a segment that looks like application data is
	// scanned like any other.
	r, st = tlsRecord(t, tlsDB, appData)
	if count(r) != 1 || st.ScanBypassed != 0 {
		t.Errorf("no handshake: %v, bypassed %d; want GET / counted, none bypassed", r.Symptoms, st.ScanBypassed)
	}
	// A database without tls_bypass scans on.
	noBypass := strings.Replace(tlsDB, "tls_bypass: TLS\n", "", 1)
	r, st = tlsRecord(t, noBypass, hello, appData)
	if count(r) != 2 || st.ScanBypassed != 0 {
		t.Errorf("without tls_bypass: %v, bypassed %d; want 2 occurrences, none bypassed", r.Symptoms, st.ScanBypassed)
	}
	if r.ScannedOctets != uint64(len(hello)+len(appData)) {
		t.Errorf("without tls_bypass: record says %d octets scanned, want %d", r.ScannedOctets, len(hello)+len(appData))
	}
}
