package fore

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/mira-project/mira/drivers"
	"github.com/mira-project/mira/drivers/fore/atm"
	"github.com/mira-project/mira/drivers/fore/erf"
)

// FirstCellMode says whether a cell capture holds only the first cell of
// each PDU.
type FirstCellMode uint8

// First-cell modes.
const (
	// FirstCellAuto looks at the first user cells of the file: when none
	// ends a PDU and each starts with an encapsulation header, the capture
	// is taken as first-cell only.
	FirstCellAuto FirstCellMode = iota
	FirstCellOn
	FirstCellOff
)

// Config configures a file or device source. The zero value means: UNI
// headers, promiscuous, LLC encapsulation, first-cell detection.
type Config struct {
	// ATM configures cell processing (filters, VC-mux encapsulations,
	// reassembly limits). Its FirstCell field is set from FirstCell.
	ATM       atm.Config
	FirstCell FirstCellMode
}

// ErrNotATM is wrapped by Open for files that are not ATM captures it
// reads (pcap files with ATM link types are read by drivers/pcapfile).
var ErrNotATM = errors.New("not an ERF or legacy ATM capture")

type fileKind uint8

const (
	kindERF fileKind = iota + 1
	kindLegacy
)

// FileSource reads an ATM capture file.
type FileSource struct {
	name      string
	kind      fileKind
	f         io.Closer
	gz        *gzip.Reader
	erf       *erf.Reader
	leg       *erf.LegacyReader
	proc      *atm.Processor
	firstCell bool
	stats     drivers.Stats
	// skipped counts ERF records of types MIRA does not read; eth counts
	// Ethernet records delivered.
	skipped uint64
	eth     uint64
	done    bool
	ifaces  []drivers.Interface
}

// Open sniffs the file's format (ERF or legacy ATM, gzip-compressed or
// not) and opens it with the default configuration.
func Open(path string) (drivers.Source, error) { return OpenFile(path, nil) }

// OpenERF opens an ERF file of ATM cell or AAL5 records.
func OpenERF(path string) (drivers.Source, error) { return openKind(path, kindERF, nil) }

// OpenLegacyATM opens a legacy ATM cell file (64-byte records).
func OpenLegacyATM(path string) (drivers.Source, error) { return openKind(path, kindLegacy, nil) }

// OpenFile sniffs the format like Open and uses cfg (nil: defaults).
func OpenFile(path string, cfg *Config) (*FileSource, error) { return openKind(path, 0, cfg) }

// opener opens the raw capture (a file, or memory in tests).
type opener func() (io.ReadCloser, error)

func fileOpener(path string) opener {
	return func() (io.ReadCloser, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("fore: %w", err)
		}
		return f, nil
	}
}

// openStream opens the capture, decompressing gzip when the content (not
// the name) says so, and returns a buffered reader for sniffing.
func openStream(name string, open opener) (io.Closer, *gzip.Reader, *bufio.Reader, error) {
	f, err := open()
	if err != nil {
		return nil, nil, nil, err
	}
	br := bufio.NewReaderSize(f, 64<<10)
	magic, _ := br.Peek(2)
	if len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			f.Close()
			return nil, nil, nil, fmt.Errorf("fore: %s: gzip: %w", name, err)
		}
		return f, gz, bufio.NewReaderSize(gz, 64<<10), nil
	}
	return f, nil, br, nil
}

func isPcap(head []byte) bool {
	if len(head) < 4 {
		return false
	}
	switch binary.LittleEndian.Uint32(head) {
	case 0xa1b2c3d4, 0xd4c3b2a1, 0xa1b23c4d, 0x4d3cb2a1, 0x0a0d0d0a:
		return true
	}
	return false
}

func sniff(path string, head []byte) (fileKind, error) {
	if isPcap(head) {
		return 0, fmt.Errorf("fore: %s: is a pcap or pcapng file (read it with drivers/pcapfile): %w", path, ErrNotATM)
	}
	if erf.Plausible(head) {
		return kindERF, nil
	}
	// Legacy records have a CRC field where ERF has its type: zero in the
	// known traces, so type 0, which ERF does not use.
	if len(head) >= erf.LegacySize && head[8] == 0 {
		return kindLegacy, nil
	}
	return 0, fmt.Errorf("fore: %s: first record at offset 0 is neither ERF nor legacy ATM: %w", path, ErrNotATM)
}

func openKind(path string, want fileKind, cfg *Config) (*FileSource, error) {
	return openWith(path, fileOpener(path), want, cfg)
}

func openWith(path string, open opener, want fileKind, cfg *Config) (*FileSource, error) {
	var c Config
	if cfg != nil {
		c = *cfg
	}
	f, gz, br, err := openStream(path, open)
	if err != nil {
		return nil, err
	}
	head, _ := br.Peek(erf.LegacySize)
	kind, err := sniff(path, head)
	switch {
	case want == kindLegacy && kind == kindERF:
		err = fmt.Errorf("fore: %s: looks like ERF, not legacy ATM (use Open or OpenERF): %w", path, ErrNotATM)
	case want == kindLegacy && !isPcap(head):
		// Asked for explicitly: legacy files whose CRC field is used
		// do not sniff as legacy.
		kind, err = kindLegacy, nil
	case want == kindERF && kind != kindERF && err == nil:
		err = fmt.Errorf("fore: %s: record at offset 0 is not a valid ERF record: %w", path, ErrNotATM)
	}
	if err != nil {
		closeAll(f, gz)
		return nil, err
	}
	s := &FileSource{name: path, kind: kind, f: f, gz: gz}
	switch kind {
	case kindERF:
		s.erf = erf.NewReader(br, path)
		for i := range 4 {
			s.ifaces = append(s.ifaces, drivers.Interface{Name: fmt.Sprintf("%s:%d", filepath.Base(path), i), LinkType: drivers.LinkRaw, Snaplen: erf.MaxRecord})
		}
	case kindLegacy:
		s.leg = erf.NewLegacyReader(br, path)
		s.ifaces = []drivers.Interface{{Name: filepath.Base(path), LinkType: drivers.LinkRaw, Snaplen: atm.PayloadSize}}
	}
	switch c.FirstCell {
	case FirstCellOn:
		s.firstCell = true
	case FirstCellAuto:
		s.firstCell, err = sniffFirstCell(path, open, kind, &c.ATM)
		if err != nil {
			closeAll(f, gz)
			return nil, err
		}
	}
	c.ATM.FirstCell = s.firstCell
	s.proc = atm.NewProcessor(&c.ATM)
	return s, nil
}

func closeAll(f io.Closer, gz *gzip.Reader) {
	if gz != nil {
		gz.Close()
	}
	f.Close()
}

// sniffCells is how many user cells first-cell detection looks at.
const sniffCells = 64

// sniffFirstCell reads the start of the file a second time and decides
// whether it holds first cells only: every one of the first user cells
// starts with its VC's encapsulation header (continuation cells of whole
// PDUs do not), and at least one does not end its PDU.
func sniffFirstCell(path string, open opener, kind fileKind, cfg *atm.Config) (bool, error) {
	f, gz, br, err := openStream(path, open)
	if err != nil {
		return false, err
	}
	defer closeAll(f, gz)
	var next func() (uint32, []byte, bool)
	switch kind {
	case kindERF:
		r := erf.NewReader(br, path)
		next = func() (uint32, []byte, bool) {
			for {
				rec, err := r.Next()
				if err != nil {
					return 0, nil, false
				}
				if rec.Type == erf.TypeATM && len(rec.Data) >= atm.RecordSize {
					return binary.BigEndian.Uint32(rec.Data), rec.Data[4:atm.RecordSize], true
				}
				if rec.Type == erf.TypeAAL5 {
					return 0, nil, false // reassembled PDUs: not a cell capture
				}
			}
		}
	case kindLegacy:
		r := erf.NewLegacyReader(br, path)
		next = func() (uint32, []byte, bool) {
			rec, err := r.Next()
			return rec.Header, rec.Payload, err == nil
		}
	}
	n, multi := 0, false
	for n < sniffCells {
		h, payload, ok := next()
		if !ok {
			break
		}
		if atm.Classify(h) != atm.KindUser {
			continue
		}
		n++
		// Single-cell PDUs end where they start; only a cell without the
		// end bit tells first cells from whole PDUs.
		if h>>1&atm.PTIUserEnd == 0 {
			multi = true
		}
		hd := atm.ParseUNI(h)
		if cfg.NNI {
			hd = atm.ParseNNI(h)
		}
		e := cfg.DefaultEncap
		if v, ok := cfg.Encap[atm.MakeVC(hd.VPI, hd.VCI)]; ok {
			e = v
		}
		if _, _, r := atm.Decap(payload, e); r != atm.ReasonNone {
			return false, nil
		}
	}
	return multi, nil
}

// Next returns the next packet. Data aliases internal buffers until the
// next call. At the end of the file partial PDUs are counted as flushed
// and Next returns io.EOF.
func (s *FileSource) Next() ([]byte, drivers.CaptureInfo, error) {
	if s.done {
		return nil, drivers.CaptureInfo{}, io.EOF
	}
	for {
		var (
			fr  atm.Frame
			ok  bool
			ifc int
		)
		switch s.kind {
		case kindERF:
			rec, err := s.erf.Next()
			if err != nil {
				return s.fail(err)
			}
			s.stats.Drops += uint64(rec.Loss)
			ifc = rec.Interface
			switch rec.Type {
			case erf.TypeATM:
				if len(rec.Data) < atm.RecordSize {
					s.stats.Errors++ // a cell record too short for a cell
					continue
				}
				fr, ok = s.proc.Record(binary.BigEndian.Uint32(rec.Data), rec.Data[4:atm.RecordSize], rec.Timestamp)
			case erf.TypeAAL5:
				fr, ok = s.aal5(rec)
			case erf.TypeEth, erf.TypeColorEth, erf.TypeDSMColorEth, erf.TypeColorHashEth:
				if data, ci, ok := s.ethernet(rec); ok {
					return data, ci, nil
				}
				continue
			default:
				s.skipped++
				continue
			}
		case kindLegacy:
			rec, err := s.leg.Next()
			if err != nil {
				return s.fail(err)
			}
			fr, ok = s.proc.Record(rec.Header, rec.Payload, rec.Timestamp)
		}
		if !ok {
			continue
		}
		s.stats.Packets++
		s.stats.Octets += uint64(fr.Length)
		return fr.Data, drivers.CaptureInfo{
			Timestamp:     fr.Timestamp,
			CaptureLength: len(fr.Data),
			Length:        fr.Length,
			LinkType:      fr.Link,
			Interface:     ifc,
			VPI:           fr.VC.VPI(),
			VCI:           fr.VC.VCI(),
			HasVC:         true,
		}, nil
	}
}

// ethernet handles ERF Ethernet records (DAG cards on Ethernet links):
// a 2-byte offset/pad, then the frame; the wire length counts the 4-byte
// FCS, which the frame does not carry to MIRA.
func (s *FileSource) ethernet(rec erf.Record) ([]byte, drivers.CaptureInfo, bool) {
	if len(rec.Data) < 2+14 || rec.WireLen < 14+4 {
		s.stats.Errors++ // no room for an Ethernet header
		return nil, drivers.CaptureInfo{}, false
	}
	frame := rec.Data[2:]
	wire := rec.WireLen - 4
	if len(frame) > wire {
		frame = frame[:wire] // record padding (and the FCS when captured)
	}
	s.stats.Packets++
	s.stats.Octets += uint64(wire)
	s.eth++
	return frame, drivers.CaptureInfo{
		Timestamp: rec.Timestamp, CaptureLength: len(frame), Length: wire,
		LinkType: drivers.LinkEthernet, Interface: rec.Interface,
	}, true
}

// aal5 handles an ERF TYPE_AAL5 record: the last cell's header, then the
// PDU, with or without its trailer (cards differ; the CRC tells).
func (s *FileSource) aal5(rec erf.Record) (atm.Frame, bool) {
	if len(rec.Data) < atm.HeaderSize {
		s.stats.Errors++ // no room for the cell header
		return atm.Frame{}, false
	}
	h := atm.ParseUNI(binary.BigEndian.Uint32(rec.Data))
	if s.proc.NNI() {
		h = atm.ParseNNI(binary.BigEndian.Uint32(rec.Data))
	}
	body := rec.Data[atm.HeaderSize:]
	wire := rec.WireLen
	if wire > 0 && wire < len(body) {
		body = body[:wire] // drop the record padding
	}
	if sdu, _, ok := atm.StripTrailer(body); ok {
		return s.proc.PDU(h.VPI, h.VCI, sdu, 0, rec.Timestamp)
	}
	return s.proc.PDU(h.VPI, h.VCI, body, wire, rec.Timestamp)
}

func (s *FileSource) fail(err error) ([]byte, drivers.CaptureInfo, error) {
	s.done = true
	s.proc.Flush()
	if err == io.EOF {
		return nil, drivers.CaptureInfo{}, io.EOF
	}
	s.stats.Errors++
	return nil, drivers.CaptureInfo{}, err
}

// Interfaces lists the capture interfaces: the four ERF interface numbers
// for ERF files, one for legacy files.
func (s *FileSource) Interfaces() []drivers.Interface { return s.ifaces }

// Stats returns the source's counters. Drops are the ERF loss counters;
// Errors counts unreadable records and cells or PDUs that failed a check
// (HEC, AAL5 length or CRC, timeouts, encapsulation), not filtered ones.
func (s *FileSource) Stats() drivers.Stats {
	st := s.stats
	a := s.proc.Stats()
	st.Errors += a.Drops.Total() - a.Drops[atm.ReasonFiltered] - a.Drops[atm.ReasonShortCell]
	return st
}

// ATMStats returns the cell-level counters.
func (s *FileSource) ATMStats() atm.Stats { return s.proc.Stats() }

// EachVC calls fn with every VC's counters.
func (s *FileSource) EachVC(fn func(atm.VC, atm.VCStats)) { s.proc.EachVC(fn) }

// FirstCell reports whether the file is treated as first cells only.
func (s *FileSource) FirstCell() bool { return s.firstCell }

// SkippedRecords counts ERF records of types other than ATM, AAL5 and
// Ethernet.
func (s *FileSource) SkippedRecords() uint64 { return s.skipped }

// Close closes the file.
func (s *FileSource) Close() error {
	s.done = true
	var err error
	if s.gz != nil {
		err = s.gz.Close()
	}
	return errors.Join(err, s.f.Close())
}
