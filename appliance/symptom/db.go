package symptom

import (
	_ "embed"
	"fmt"
	"os"
	"sync"

	"github.com/mira-project/mira/flow"
)

// Symptom names one symptom of a database. IDs count from 1 in file order.
type Symptom struct {
	ID          uint16
	Name        string
	Description string
}

// DB is a compiled symptom database: immutable and safe for concurrent use.
type DB struct {
	file     string
	symptoms []Symptom
	patterns int
	limit    uint64
	tlsID    uint16 // tls_bypass's symptom; 0: no bypass
	m        *matcher
}

// Load reads and compiles a YAML database file.
func Load(path string) (*DB, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("symptom: load: %w", err)
	}
	return Parse(path, data)
}

// Parse compiles a YAML database; name is used in error messages.
func Parse(name string, yaml []byte) (*DB, error) {
	spec, err := ParseSpec(name, yaml)
	if err != nil {
		return nil, err
	}
	return Compile(spec)
}

//go:embed default.yaml
var defaultYAML []byte

var defaultDB = sync.OnceValue(func() *DB {
	db, err := Parse("default.yaml", defaultYAML)
	if err != nil {
		panic("symptom: embedded default database: " + err.Error())
	}
	return db
})

// Default returns the embedded default database.
func Default() *DB { return defaultDB() }

// DefaultYAML returns the text of the embedded default database.
func DefaultYAML() []byte { return append([]byte(nil), defaultYAML...) }

// Symptoms lists the database's symptoms; Symptoms()[i].ID == i+1.
func (db *DB) Symptoms() []Symptom { return append([]Symptom(nil), db.symptoms...) }

// Lookup returns the symptom with the given name.
func (db *DB) Lookup(name string) (Symptom, bool) {
	for _, s := range db.symptoms {
		if s.Name == name {
			return s, true
		}
	}
	return Symptom{}, false
}

// Name returns the name of symptom id, or "" if there is none.
func (db *DB) Name(id uint16) string {
	if id == 0 || int(id) > len(db.symptoms) {
		return ""
	}
	return db.symptoms[id-1].Name
}

// ScanLimit is the number of payload bytes scanned per flow direction
// (0: unlimited).
func (db *DB) ScanLimit() uint64 { return db.limit }

// WithScanLimit returns a copy of the database that scans at most limit
// bytes per flow direction (0: unlimited). The compiled matcher is shared.
func (db *DB) WithScanLimit(limit uint64) *DB {
	c := *db
	c.limit = limit
	return &c
}

// Encrypted tells whether a flow direction can stop being scanned at this
// in-order TCP segment: the database names a TLS handshake symptom
// (tls_bypass), the direction's counts c already hold it, and payload
// opens a TLS application-data record (content type 23, version 3.x).
// From there on the direction carries ciphertext, in which a match could
// only be a false one (Suricata's encrypted bypass).
func (db *DB) Encrypted(c *Counts, payload []byte) bool {
	return db.tlsID != 0 && len(payload) >= 5 && payload[0] == 0x17 && payload[1] == 3 && payload[2] <= 4 &&
		c.Get(db.tlsID) > 0
}

// TLSAppDataAt follows the TLS records of payload, which starts at a record
// boundary, and returns the offset of the first application-data record
// header within it (content type 23, version 3.x), or -1 when the records
// stop before one, a header is not TLS (content types 20-23) or the
// database has no tls_bypass. A server's first flight (ServerHello,
// ChangeCipherSpec, then encrypted records) and a client's second
// (ChangeCipherSpec, Finished) reach their ciphertext in their first
// segment, which never starts with an application-data record.
func (db *DB) TLSAppDataAt(payload []byte) int {
	if db.tlsID == 0 {
		return -1
	}
	for i := 0; i+5 <= len(payload); {
		t := payload[i]
		if t < 20 || t > 23 || payload[i+1] != 3 || payload[i+2] > 4 {
			return -1
		}
		if t == 23 {
			return i
		}
		i += 5 + (int(payload[i+3])<<8 | int(payload[i+4]))
	}
	return -1
}

// Stats describes the compiled matcher.
type Stats struct {
	Patterns   int // patterns as written
	Entries    int // compiled alternatives (mask expansions, validator triggers)
	DFAStates  int // states of both boundary automata
	TableBytes int // memory of the automata and prefilter tables
}

// Stats reports the size of the compiled matcher.
func (db *DB) Stats() Stats {
	m := db.m
	s := Stats{Patterns: db.patterns, Entries: len(m.ents)}
	for _, a := range []*automaton{m.cs, m.ci} {
		if a != nil {
			s.DFAStates += a.states()
			s.TableBytes += 2*len(a.t16) + 4*len(a.t32) + 2*len(a.depth) + 4*len(a.outs) + 4*len(a.outIdx)
		}
	}
	s.TableBytes += 8*len(m.bloom) + 8*len(m.grams.keys) + 24*len(m.lists)
	if m.fdr != nil {
		s.TableBytes += 8*len(m.fdr.tab) + 8*len(m.fdr.grams.keys) + len(m.start2) + 4*len(m.last2)
	}
	return s
}

// State is the matcher state of one flow direction: 8 bytes. The zero
// value means "start of the direction's payload" when Scan is given
// streamOffset 0, and "unknown history" otherwise.
type State struct {
	cs, ci uint32 // automaton state + 1; 0: not started
}

// Reset forgets the history; call it on a TCP gap or retransmission.
func (st *State) Reset() { *st = State{} }

// countSlots is how many distinct symptoms one Counts holds.
const countSlots = 8

// Counts holds a flow's occurrence counts per symptom id: up to 8 distinct
// symptoms, further symptoms' occurrences go to Overflow. The zero value is
// empty. Counts saturate at 2^32-1.
type Counts struct {
	ids      [countSlots]uint16
	counts   [countSlots]uint32
	n        uint8
	Overflow uint32
}

func (c *Counts) add(id uint16) {
	n := int(c.n)
	for i := 0; i < n; i++ {
		if c.ids[i] == id {
			if c.counts[i] != ^uint32(0) {
				c.counts[i]++
			}
			return
		}
	}
	if n < countSlots {
		c.ids[n] = id
		c.counts[n] = 1
		c.n++
		return
	}
	if c.Overflow != ^uint32(0) {
		c.Overflow++
	}
}

// Add adds n occurrences of symptom id (for merging counts).
func (c *Counts) Add(id uint16, n uint32) {
	if n == 0 {
		return
	}
	sat := func(a, b uint32) uint32 {
		if a+b < a {
			return ^uint32(0)
		}
		return a + b
	}
	for i := 0; i < int(c.n); i++ {
		if c.ids[i] == id {
			c.counts[i] = sat(c.counts[i], n)
			return
		}
	}
	if int(c.n) < countSlots {
		c.ids[c.n], c.counts[c.n] = id, n
		c.n++
		return
	}
	c.Overflow = sat(c.Overflow, n)
}

// Len is the number of distinct symptoms held.
func (c *Counts) Len() int { return int(c.n) }

// At returns the i-th (id, count) pair, in order of first occurrence.
func (c *Counts) At(i int) (id uint16, count uint32) { return c.ids[i], c.counts[i] }

// Get returns the count of symptom id.
func (c *Counts) Get(id uint16) uint32 {
	for i := 0; i < int(c.n); i++ {
		if c.ids[i] == id {
			return c.counts[i]
		}
	}
	return 0
}

// Total is the number of occurrences, Overflow included.
func (c *Counts) Total() uint64 {
	t := uint64(c.Overflow)
	for i := 0; i < int(c.n); i++ {
		t += uint64(c.counts[i])
	}
	return t
}

// Reset empties the counts.
func (c *Counts) Reset() { *c = Counts{} }

// AppendTo appends the counts as flow.SymptomCount values (for
// flow.Record.Symptoms); it allocates only if dst lacks capacity.
func (c *Counts) AppendTo(dst []flow.SymptomCount) []flow.SymptomCount {
	for i := 0; i < int(c.n); i++ {
		dst = append(dst, flow.SymptomCount{ID: c.ids[i], Count: c.counts[i]})
	}
	return dst
}
