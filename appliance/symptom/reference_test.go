package symptom

// naiveCounts is the test oracle: every entry checked at every position of
// the whole stream, with the same semantics as Scan but no cleverness.
func naiveCounts(db *DB, stream []byte) map[uint16]uint64 {
	got := map[uint16]uint64{}
	if db.limit > 0 && uint64(len(stream)) > db.limit {
		stream = stream[:db.limit]
	}
	for ei := range db.m.ents {
		e := &db.m.ents[ei]
		for i := 0; i+len(e.trig) <= len(stream); i++ {
			ok := true
			for j, b := range e.trig {
				c := stream[i+j]
				if e.nocase {
					c = foldByte(c)
				}
				if c != b {
					ok = false
					break
				}
			}
			if !ok {
				continue
			}
			start := i - e.toff
			if start < 0 || start+e.length > len(stream) {
				continue
			}
			if uint64(start) < e.lo || uint64(start+e.length) > e.hi {
				continue
			}
			if e.bol && start > 0 && stream[start-1] != '\n' {
				continue
			}
			switch e.kind {
			case KindMask:
				for j, mk := range e.mask {
					if stream[start+j]&mk != e.value[j]&mk {
						ok = false
					}
				}
			case KindValidate:
				ok = e.check(stream, start)
			case KindRegex:
				ok = e.re.Match(stream[start:])
			}
			if ok {
				got[e.sym]++
			}
		}
	}
	return got
}

func countsMap(c *Counts) map[uint16]uint64 {
	m := map[uint16]uint64{}
	for i := 0; i < c.Len(); i++ {
		id, n := c.At(i)
		m[id] = uint64(n)
	}
	return m
}

// scanChunks scans stream as consecutive packets cut at the given sizes
// (cycled), with one Counts per 8 symptoms so none overflows.
func scanChunks(db *DB, stream []byte, sizes []int) map[uint16]uint64 {
	var st State
	total := map[uint16]uint64{}
	var c Counts
	flush := func() {
		for k, v := range countsMap(&c) {
			total[k] += v
		}
		c.Reset()
	}
	off := 0
	for k := 0; off < len(stream); k++ {
		n := sizes[k%len(sizes)]
		if n <= 0 {
			n = 1
		}
		if off+n > len(stream) {
			n = len(stream) - off
		}
		db.Scan(&st, &c, stream[off:off+n], uint64(off))
		if c.Len() >= countSlots-1 {
			flush()
		}
		off += n
	}
	flush()
	return total
}
