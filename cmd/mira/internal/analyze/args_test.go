package analyze

import (
	"flag"
	"io"
	"reflect"
	"testing"
)

// TestParseInterspersed: flags may come before, between and after the
// file names; "--" makes the rest file names even if they look like flags.
func TestParseInterspersed(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		files  []string
		format string
	}{
		{[]string{"--format", "json", "a.pcap"}, []string{"a.pcap"}, "json"},
		{[]string{"a.pcap", "--format", "csv"}, []string{"a.pcap"}, "csv"},
		{[]string{"a.pcap", "-format=json", "b.pcap"}, []string{"a.pcap", "b.pcap"}, "json"},
		{[]string{"a.pcap", "--", "--format", "b.pcap"}, []string{"a.pcap", "--format", "b.pcap"}, "table"},
		{nil, nil, "table"},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		format := fs.String("format", "table", "")
		files, err := parseInterspersed(fs, tc.args, io.Discard, io.Discard)
		if err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		if !reflect.DeepEqual(files, tc.files) || *format != tc.format {
			t.Errorf("%q: files %q format %q, want %q %q", tc.args, files, *format, tc.files, tc.format)
		}
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if _, err := parseInterspersed(fs, []string{"a.pcap", "--bogus"}, io.Discard, io.Discard); err == nil {
		t.Error("an unknown flag after a file name was accepted")
	}
}
