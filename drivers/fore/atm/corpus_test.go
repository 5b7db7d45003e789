package atm

import (
	"testing"

	"github.com/mira-project/mira/tools/foretest"
)

func corpus(t testing.TB, rel string) string { return foretest.Corpus(t, rel) }

func ethernetFrames(t testing.TB, path string) [][]byte { return foretest.EthernetFrames(t, path) }

func ipPackets(frames [][]byte) [][]byte { return foretest.IPPackets(frames) }
