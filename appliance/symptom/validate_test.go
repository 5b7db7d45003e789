package symptom

import (
	"math/rand/v2"
	"testing"
)

func TestValidators(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	frames := mpegFrames(3, 0xFFFB9064, r)
	badSecond := append([]byte(nil), frames...)
	badSecond[417+1] = 0x00 // second header's sync broken
	otherRate := append([]byte(nil), frames...)
	otherRate[417+2] = 0x94 // second frame at 48 kHz: not the same stream
	// Layer I, 288 kbit/s, 44.1 kHz: (12*288000/44100)*4 = 312-byte frames.
	layer1 := make([]byte, 1000)
	for _, o := range []int{0, 312, 624} {
		copy(layer1[o:], "\xff\xff\x90\x64")
	}
	short := frames[:417+3] // second header cut by the packet end
	for _, tc := range []struct {
		name string
		v    string
		in   []byte
		at   int
		want bool
	}{
		{"mpeg three frames", "mpeg-audio", frames, 0, true},
		{"mpeg two frames then packet end", "mpeg-audio", frames[:2*417+2], 0, true},
		{"mpeg broken second", "mpeg-audio", badSecond, 0, false},
		{"mpeg sample rate changes", "mpeg-audio", otherRate, 0, false},
		{"mpeg layer I refused", "mpeg-audio", layer1, 0, false},
		{"mpeg second beyond packet", "mpeg-audio", short, 0, false},
		{"id3v2.4", "id3v2", []byte("ID3\x04\x00\x00\x00\x00\x1f\x76"), 0, true},
		{"id3 bad size byte", "id3v2", []byte("ID3\x04\x00\x00\x00\x80\x1f\x76"), 0, false},
		{"id3 version 5", "id3v2", []byte("ID3\x05\x00\x00\x00\x00\x1f\x76"), 0, false},
		{"ogg", "ogg", append([]byte("OggS\x00\x02"), make([]byte, 21)...), 0, true},
		{"ogg version 1", "ogg", append([]byte("OggS\x01\x02"), make([]byte, 21)...), 0, false},
		{"flac", "flac", []byte("fLaC\x80\x00\x00\x22"), 0, true},
		{"flac bad block", "flac", []byte("fLaC\x03\x00\x00\x22"), 0, false},
		{"mp4", "mp4", []byte("\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00"), 0, true},
		{"mp4 odd size", "mp4", []byte("\x00\x00\x00\x17ftypmp42\x00\x00\x00\x00"), 0, false},
		{"mp4 binary brand", "mp4", []byte("\x00\x00\x00\x18ftyp\x01\x02\x03\x04\x00\x00\x00\x00"), 0, false},
		{"matroska", "matroska", []byte("\x1a\x45\xdf\xa3\x93\x42\x82\x88matroska"), 0, true},
		{"ebml other doctype", "matroska", []byte("\x1a\x45\xdf\xa3\x93\x42\x82\x88xxxxxxxx"), 0, false},
		{"avi", "avi", []byte("RIFF\x00\x00\x00\x00AVI "), 0, true},
		{"riff wave is not avi", "avi", []byte("RIFF\x00\x00\x00\x00WAVE"), 0, false},
		{"wav", "wav", []byte("RIFF\x00\x00\x00\x00WAVE"), 0, true},
		{"flv", "flv", []byte("FLV\x01\x05\x00\x00\x00\x09"), 0, true},
		{"flv bad header size", "flv", []byte("FLV\x01\x05\x00\x00\x00\x0a"), 0, false},
		{"mpeg-ps mpeg2", "mpeg-ps", []byte("\x00\x00\x01\xba\x44\x00\x04\x00\x04\x01\x01\x89\xc3\xf8"), 0, true},
		{"mpeg-ps markers wrong", "mpeg-ps", []byte("\x00\x00\x01\xba\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"), 0, false},
		{"mpeg-ts", "mpeg-ts", tsPackets(4), 0, true},
		{"mpeg-ts three packets", "mpeg-ts", tsPackets(3), 0, false},
		{"rtp framed", "rtp-framed", []byte("\x00\x0e\x80\x08\x00\x01\x00\x00\x00\xa0\x12\x34\x56\x78\xd5\xd5"), 0, true},
		{"rtp framed, segment ends mid-packet", "rtp-framed", []byte("\x00\x0f\x80\x08\x00\x01\x00\x00\x00\xa0\x12\x34\x56\x78\xd5\xd5"), 0, false},
		{"rtp framed, bytes after the packet", "rtp-framed", []byte("\x00\x0e\x80\x08\x00\x01\x00\x00\x00\xa0\x12\x34\x56\x78\xd5\xd5\x00"), 0, false},
		{"rtp framed, RTCP type", "rtp-framed", []byte("\x00\x0e\x80\xc8\x00\x01\x00\x00\x00\xa0\x12\x34\x56\x78\xd5\xd5"), 0, false},
		{"rtp framed, CSRCs beyond the packet", "rtp-framed", []byte("\x00\x0e\x80\x08\x00\x01\x00\x00\x00\xa0\x12\x34\x56\x78\xd5\xd5\x00\x0e\x83\x08\x00\x01\x00\x00\x00\xa0\x12\x34\x56\x78\xd5\xd5"), 0, false},
		// DNS over TCP: a query whose ID starts with 0x80 (question count 1)
		{"dns over tcp is not rtp", "rtp-framed", []byte("\x00\x1d\x80\x12\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01"), 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := validators[tc.v].check(tc.in, tc.at); got != tc.want {
				t.Errorf("%s: got %v, want %v", tc.v, got, tc.want)
			}
		})
	}
}

// TestValidatorsBounds runs every validator at every position of short
// random buffers: they must not read outside p.
func TestValidatorsBounds(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	for n := 0; n < 40; n++ {
		p := make([]byte, n)
		for i := range p {
			p[i] = []byte{0xFF, 0xFB, 0x47, 0, 'I', 'D', '3', 0x1a}[r.IntN(8)]
		}
		for name, v := range validators {
			for s := 0; s < n; s++ {
				func() {
					defer func() {
						if e := recover(); e != nil {
							t.Fatalf("%s at %d of %d: %v", name, s, n, e)
						}
					}()
					v.check(p, s)
				}()
			}
		}
	}
}
