package symptom

import (
	"encoding/binary"
	"sort"
	"strings"
)

// A validator checks binary content where a bare pattern would fire on
// random data. It is given the packet and the candidate start found by its
// trigger and reads only within p (so content must lie in one packet).
type validator func(p []byte, start int) bool

type trigger struct {
	bytes []byte
	off   int // trigger position within the validated object
}

type validatorDef struct {
	triggers []trigger
	minLen   int
	check    validator
	sync     companion // a byte at a distance from the trigger, if fixed
}

var validators = map[string]validatorDef{
	"mpeg-audio": {triggers: mpegTriggers(), minLen: 4, check: checkMPEGAudio},
	"id3v2":      {triggers: []trigger{{[]byte("ID3"), 0}}, minLen: 10, check: checkID3v2},
	"ogg":        {triggers: []trigger{{[]byte("OggS"), 0}}, minLen: 27, check: checkOgg},
	"flac":       {triggers: []trigger{{[]byte("fLaC"), 0}}, minLen: 8, check: checkFLAC},
	"mp4":        {triggers: []trigger{{[]byte("ftyp"), 4}}, minLen: 16, check: checkMP4},
	"matroska":   {triggers: []trigger{{[]byte{0x1A, 0x45, 0xDF, 0xA3}, 0}}, minLen: 8, check: checkMatroska},
	"avi":        {triggers: []trigger{{[]byte("RIFF"), 0}}, minLen: 12, check: checkRIFF("AVI ")},
	"wav":        {triggers: []trigger{{[]byte("RIFF"), 0}}, minLen: 12, check: checkRIFF("WAVE")},
	"flv":        {triggers: []trigger{{[]byte("FLV\x01"), 0}}, minLen: 9, check: checkFLV},
	"mpeg-ps":    {triggers: []trigger{{[]byte{0, 0, 1, 0xBA}, 0}}, minLen: 14, check: checkMPEGPS},
	// Every TS packet starts with 0x47: the next one's sync byte is the
	// companion the trigger search checks (firstMasks).
	"mpeg-ts": {triggers: []trigger{{[]byte{0x47}, 0}}, minLen: 188, check: checkMPEGTS, sync: companion{188, 0xFF, 0x47}},
}

func validatorNames() string {
	var n []string
	for k := range validators {
		n = append(n, k)
	}
	sort.Strings(n)
	return strings.Join(n, ", ")
}

// mpegTriggers: the 11-bit frame sync, 0xFF then 0xE0..0xFF.
func mpegTriggers() []trigger {
	var t []trigger
	for b := 0xE0; b <= 0xFF; b++ {
		t = append(t, trigger{[]byte{0xFF, byte(b)}, 0})
	}
	return t
}

// Bitrates in kbit/s by [version is MPEG-1][layer index 1..3][bitrate index].
var mpegBitrate = [2][4][16]uint16{
	{ // MPEG-2 and 2.5
		{},
		{0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, 0},      // layer III
		{0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, 0},      // layer II
		{0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256, 0}, // layer I
	},
	{ // MPEG-1
		{},
		{0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 0},     // layer III
		{0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 0},    // layer II
		{0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448, 0}, // layer I
	},
}

// Sample rates by [version field][rate index].
var mpegRate = [4][3]uint32{
	{11025, 12000, 8000}, // MPEG-2.5
	{},                   // reserved
	{22050, 24000, 16000},
	{44100, 48000, 32000},
}

// mpegFrame parses a frame header at p[s:] and returns the frame length and
// the fields a following frame must share (0 if the header is invalid).
func mpegFrame(p []byte, s int) (length int, key uint32) {
	if s < 0 || s+4 > len(p) {
		return 0, 0
	}
	h := binary.BigEndian.Uint32(p[s:])
	if h>>21 != 0x7FF {
		return 0, 0
	}
	version := h >> 19 & 3
	layer := h >> 17 & 3
	br := h >> 12 & 15
	sr := h >> 10 & 3
	pad := h >> 9 & 1
	emphasis := h & 3
	// Layer I is left out: it is all but unused, and its header (0xFFFx
	// with protection bit 1) is common in x86 code, where -1 is.
	if version == 1 || layer == 0 || layer == 3 || br == 0 || br == 15 || sr == 3 || emphasis == 2 {
		return 0, 0
	}
	v1 := 0
	if version == 3 {
		v1 = 1
	}
	bitrate := uint32(mpegBitrate[v1][layer][br]) * 1000
	rate := mpegRate[version][sr]
	switch {
	case layer == 3: // layer I
		length = int((12*bitrate/rate + pad) * 4)
	case layer == 1 && v1 == 0: // layer III, MPEG-2/2.5
		length = int(72*bitrate/rate + pad)
	default:
		length = int(144*bitrate/rate + pad)
	}
	return length, 1 + (version<<4 | layer<<2 | sr) // fields frames of one stream share
}

// checkMPEGAudio wants a valid header and, where the first frame's length
// says, a second header with the same version, layer and sample rate; when
// a third frame would start inside the packet it must be valid too (this
// keeps compiled code and other binary content from passing by chance).
func checkMPEGAudio(p []byte, s int) bool {
	n, key := mpegFrame(p, s)
	if n < 24 {
		return false
	}
	n2, key2 := mpegFrame(p, s+n)
	if n2 == 0 || key2 != key {
		return false
	}
	if t := s + n + n2; t+4 <= len(p) {
		n3, key3 := mpegFrame(p, t)
		return n3 != 0 && key3 == key
	}
	return true
}

func checkID3v2(p []byte, s int) bool {
	if s+10 > len(p) {
		return false
	}
	v, rev, flags := p[s+3], p[s+4], p[s+5]
	if v < 2 || v > 4 || rev == 0xFF || flags&0x0F != 0 {
		return false
	}
	for _, b := range p[s+6 : s+10] {
		if b >= 0x80 {
			return false
		}
	}
	return true
}

func checkOgg(p []byte, s int) bool {
	if s+27 > len(p) {
		return false
	}
	return p[s+4] == 0 && p[s+5]&^7 == 0
}

func checkFLAC(p []byte, s int) bool {
	if s+8 > len(p) {
		return false
	}
	// The first metadata block must be STREAMINFO, 34 bytes long.
	return p[s+4]&0x7F == 0 && p[s+5] == 0 && p[s+6] == 0 && p[s+7] == 34
}

func checkMP4(p []byte, s int) bool {
	if s+16 > len(p) {
		return false
	}
	size := binary.BigEndian.Uint32(p[s:])
	if size < 16 || size > 1024 || size%4 != 0 {
		return false
	}
	for _, c := range p[s+8 : s+12] { // major brand
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == ' ') {
			return false
		}
	}
	return true
}

func checkMatroska(p []byte, s int) bool {
	if s+4 > len(p) {
		return false
	}
	end := s + 64
	if end > len(p) {
		end = len(p)
	}
	w := p[s+4 : end]
	for i := 0; i+3 < len(w); i++ {
		if w[i] != 0x42 || w[i+1] != 0x82 {
			continue
		}
		n := int(w[i+2] & 0x7F)
		if w[i+2]&0x80 == 0 || i+3+n > len(w) {
			return false
		}
		t := string(w[i+3 : i+3+n])
		return t == "matroska" || t == "webm"
	}
	return false
}

func checkRIFF(form string) validator {
	return func(p []byte, s int) bool {
		if s+12 > len(p) {
			return false
		}
		return string(p[s+8:s+12]) == form
	}
}

func checkFLV(p []byte, s int) bool {
	if s+9 > len(p) {
		return false
	}
	return p[s+4]&0xFA == 0 && p[s+4] != 0 && binary.BigEndian.Uint32(p[s+5:]) == 9
}

func checkMPEGPS(p []byte, s int) bool {
	if s+14 > len(p) {
		return false
	}
	b := p[s+4:]
	if b[0]&0xF1 == 0x21 { // MPEG-1 pack header
		return b[2]&1 == 1 && b[4]&1 == 1 && b[5]&0x80 == 0x80 && b[7]&1 == 1
	}
	// MPEG-2: marker bits
	return b[0]&0xC4 == 0x44 && b[2]&4 == 4 && b[4]&4 == 4 && b[5]&1 == 1 && b[8]&3 == 3
}

// checkMPEGTS wants four packet syncs 188 bytes apart.
func checkMPEGTS(p []byte, s int) bool {
	if s+3*188 >= len(p) {
		return false
	}
	return p[s+188] == 0x47 && p[s+376] == 0x47 && p[s+564] == 0x47
}
