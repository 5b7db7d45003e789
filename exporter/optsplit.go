package exporter

import (
	"encoding/binary"

	"github.com/mira-project/mira/ipfix"
)

// optUnit is a piece of an options message that goes whole into one
// message: a template set, or one data record of a data set.
type optUnit struct {
	set  uint16
	body []byte
	data bool // a data record (counted in sequence numbers)
}

// splitOptions cuts the sets of an options message (msg, header
// included) into message bodies of at most limit bytes with their
// header: whole template sets, data sets cut between records (their
// templates are read from the message's own template sets), in order.
// It returns the bodies (sets only) and the data records of each, and
// false when msg cannot be cut so (a set or record beyond the limit by
// itself, a data set of an unknown template): then it goes whole.
func splitOptions(msg []byte, limit int) (bodies [][]byte, recs []int, ok bool) {
	room := limit - ipfix.HeaderLen - ipfix.SetHeaderLen
	tmpls := map[uint16][]uint16{} // template id -> field lengths
	var units []optUnit
	for b := msg[ipfix.HeaderLen:]; len(b) > 0; {
		if len(b) < ipfix.SetHeaderLen {
			return nil, nil, false
		}
		id, l := binary.BigEndian.Uint16(b), int(binary.BigEndian.Uint16(b[2:]))
		if l < ipfix.SetHeaderLen || l > len(b) {
			return nil, nil, false
		}
		body := b[ipfix.SetHeaderLen:l]
		b = b[l:]
		switch {
		case id == ipfix.TemplateSetID || id == ipfix.OptionsSetID:
			if !readTemplates(body, id == ipfix.OptionsSetID, tmpls) || len(body) > room {
				return nil, nil, false
			}
			units = append(units, optUnit{set: id, body: body})
		default:
			fields, known := tmpls[id]
			if !known {
				return nil, nil, false
			}
			for len(body) > 0 {
				n, ok := recordLen(fields, body)
				if !ok || n > room {
					return nil, nil, false
				}
				units = append(units, optUnit{set: id, body: body[:n], data: true})
				body = body[n:]
			}
		}
	}
	var cur []byte
	curRecs, setStart := 0, -1
	var curSet uint16
	flush := func() {
		if setStart >= 0 {
			cur = ipfix.FinishSet(cur, setStart, 0)
		}
		if len(cur) > 0 {
			bodies = append(bodies, cur)
			recs = append(recs, curRecs)
		}
		cur, curRecs, setStart = nil, 0, -1
	}
	for _, u := range units {
		same := setStart >= 0 && curSet == u.set && u.data
		need := len(u.body)
		if !same {
			need += ipfix.SetHeaderLen
		}
		if ipfix.HeaderLen+len(cur)+need > limit {
			flush()
			same = false
		}
		if !same {
			if setStart >= 0 {
				cur = ipfix.FinishSet(cur, setStart, 0)
			}
			cur, setStart = ipfix.AppendSetHeader(cur, u.set)
			curSet = u.set
		}
		cur = append(cur, u.body...)
		if u.data {
			curRecs++
		}
	}
	flush()
	return bodies, recs, true
}

// readTemplates adds the field lengths of the templates (or options
// templates) in a template set's body to tmpls.
func readTemplates(b []byte, options bool, tmpls map[uint16][]uint16) bool {
	for len(b) >= 4 {
		id, n := binary.BigEndian.Uint16(b), int(binary.BigEndian.Uint16(b[2:]))
		i := 4
		if options {
			i = 6
		}
		if id == 0 && n == 0 {
			return true // padding
		}
		var lens []uint16
		for k := 0; k < n; k++ {
			if i+4 > len(b) {
				return false
			}
			fid, fl := binary.BigEndian.Uint16(b[i:]), binary.BigEndian.Uint16(b[i+2:])
			i += 4
			if fid&0x8000 != 0 {
				i += 4
			}
			lens = append(lens, fl)
		}
		if i > len(b) {
			return false
		}
		tmpls[id] = lens
		b = b[i:]
	}
	return len(b) == 0
}

// recordLen is the length of the data record at the start of b.
func recordLen(fields []uint16, b []byte) (int, bool) {
	i := 0
	for _, l := range fields {
		if l != ipfix.VarLen {
			i += int(l)
			continue
		}
		if i >= len(b) {
			return 0, false
		}
		n := int(b[i])
		i++
		if n == 255 {
			if i+2 > len(b) {
				return 0, false
			}
			n = int(binary.BigEndian.Uint16(b[i:]))
			i += 2
		}
		i += n
	}
	return i, i <= len(b) && i > 0
}
