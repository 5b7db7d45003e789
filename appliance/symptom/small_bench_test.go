package symptom

import "testing"

// BenchmarkScanSmall scans single small datagrams from the start of their
// direction with the default database: the per-packet cost of DNS, game
// and DHT traffic.
func BenchmarkScanSmall(b *testing.B) {
	db := Default()
	for _, c := range []struct {
		name string
		p    []byte
	}{
		{"dns-query", []byte("\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x01\x03www\x07example\x03com\x00\x00\x01\x00\x01\x00\x00\x29\x10\x00\x00\x00\x00\x00\x00\x00")},
		{"game-60", []byte("\xff\xff\xff\xffgetstatus xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")},
		{"random-80", []byte("\x3a\x91\x07\xc4\x55\x12\x9e\x01\x7f\x66\x21\xab\xcd\x10\x42\x99\x3a\x91\x07\xc4\x55\x12\x9e\x01\x7f\x66\x21\xab\xcd\x10\x42\x99\x3a\x91\x07\xc4\x55\x12\x9e\x01\x7f\x66\x21\xab\xcd\x10\x42\x99\x3a\x91\x07\xc4\x55\x12\x9e\x01\x7f\x66\x21\xab\xcd\x10\x42\x99\x3a\x91\x07\xc4\x55\x12\x9e\x01\x7f\x66\x21\xab\xcd\x10\x42\x99")},
	} {
		b.Run(c.name, func(b *testing.B) {
			var cn Counts
			for b.Loop() {
				var st State
				db.Scan(&st, &cn, c.p, 0)
			}
		})
		b.Run(c.name+"/datagram", func(b *testing.B) {
			var cn Counts
			for b.Loop() {
				db.ScanDatagram(&cn, c.p)
			}
		})
	}
}
