package erf

import (
	"testing"

	"github.com/mira-project/mira/drivers/fore/internal/foretest"
)

func corpus(t testing.TB, rel string) string { return foretest.Corpus(t, rel) }
