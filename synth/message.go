package synth

import "encoding/binary"

// Filler kinds: bytes generated from their offset, so bulk bodies are never
// held in memory.
const (
	fillNone   uint8 = iota
	fillRandom       // uniformly random bytes
	fillMP3          // MPEG-1 layer III frames (128 kbit/s, 44.1 kHz) with random audio data
)

// mp3Frame is the length of one MPEG-1 layer III frame at 128 kbit/s and
// 44.1 kHz without padding: 144*128000/44100.
const mp3Frame = 417

// mp3Header is that frame's header: sync, MPEG-1, layer III, no CRC,
// 128 kbit/s, 44.1 kHz, no padding, joint stereo.
var mp3Header = [4]byte{0xff, 0xfb, 0x90, 0x64}

// piece is a literal run of bytes or n filler bytes.
type piece struct {
	lit  []byte
	n    int
	kind uint8
	seed uint64
}

// mark is one planted symptom marker at an offset of a message.
type mark struct {
	id  int // index in markerTable
	off int
}

// message is one application message (a TCP write or a UDP datagram).
type message struct {
	pieces []piece
	size   int
	marks  []mark
}

// read fills dst with the message bytes from offset off.
func (m *message) read(dst []byte, off int) {
	for i := range m.pieces {
		if len(dst) == 0 {
			return
		}
		p := &m.pieces[i]
		l := p.n
		if p.kind == fillNone {
			l = len(p.lit)
		}
		if off >= l {
			off -= l
			continue
		}
		k := min(l-off, len(dst))
		switch p.kind {
		case fillNone:
			copy(dst[:k], p.lit[off:off+k])
		case fillRandom:
			randomFill(dst[:k], p.seed, off)
		case fillMP3:
			mp3Fill(dst[:k], p.seed, off)
		}
		dst = dst[k:]
		off = 0
	}
}

// mix is the SplitMix64 finaliser.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// randomFill writes the random bytes at offsets [off, off+len(dst)) of the
// stream named by seed.
func randomFill(dst []byte, seed uint64, off int) {
	w := uint64(off / 8)
	if r := off % 8; r != 0 {
		var tmp [8]byte
		binary.LittleEndian.PutUint64(tmp[:], mix(seed^w*0x2545f4914f6cdd1d))
		k := copy(dst, tmp[r:])
		dst = dst[k:]
		w++
	}
	for len(dst) >= 8 {
		binary.LittleEndian.PutUint64(dst, mix(seed^w*0x2545f4914f6cdd1d))
		dst = dst[8:]
		w++
	}
	if len(dst) > 0 {
		var tmp [8]byte
		binary.LittleEndian.PutUint64(tmp[:], mix(seed^w*0x2545f4914f6cdd1d))
		copy(dst, tmp[:])
	}
}

// mp3Fill writes MPEG audio frames: a header every mp3Frame bytes, random
// bytes between them.
func mp3Fill(dst []byte, seed uint64, off int) {
	randomFill(dst, seed, off)
	first := off / mp3Frame * mp3Frame
	for f := first; f < off+len(dst); f += mp3Frame {
		for i := 0; i < 4; i++ {
			if p := f + i - off; p >= 0 && p < len(dst) {
				dst[p] = mp3Header[i]
			}
		}
	}
}

// msgBuilder assembles a message from literals, markers and fillers.
type msgBuilder struct {
	m   message
	lit []byte
}

func (b *msgBuilder) flush() {
	if len(b.lit) > 0 {
		b.m.pieces = append(b.m.pieces, piece{lit: b.lit})
		b.lit = nil
	}
}

// s appends literal text.
func (b *msgBuilder) s(parts ...string) *msgBuilder {
	for _, p := range parts {
		b.lit = append(b.lit, p...)
		b.m.size += len(p)
	}
	return b
}

// bytes appends literal bytes.
func (b *msgBuilder) bytes(p []byte) *msgBuilder {
	b.lit = append(b.lit, p...)
	b.m.size += len(p)
	return b
}

// mark appends the marker id and records it as planted.
func (b *msgBuilder) mark(id int) *msgBuilder {
	b.m.marks = append(b.m.marks, mark{id: id, off: b.m.size})
	return b.s(markerTable[id].Text)
}

// fill appends n filler bytes of the kind.
func (b *msgBuilder) fill(kind uint8, n int, seed uint64) *msgBuilder {
	if n <= 0 {
		return b
	}
	b.flush()
	b.m.pieces = append(b.m.pieces, piece{n: n, kind: kind, seed: seed})
	b.m.size += n
	return b
}

func (b *msgBuilder) done() message {
	b.flush()
	return b.m
}
