package erf

import (
	"testing"

	"github.com/mira-project/mira/tools/foretest"
)

func corpus(t testing.TB, rel string) string { return foretest.Corpus(t, rel) }
