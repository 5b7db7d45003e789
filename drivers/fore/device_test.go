package fore

import (
	"errors"
	"runtime"
	"testing"

	"github.com/mira-project/mira/drivers"
)

func TestOpenDeviceAbsent(t *testing.T) {
	_, err := OpenDevice("/nonexistent/fatm0")
	if err == nil {
		t.Fatal("opened a device that does not exist")
	}
	if unsupported := errors.Is(err, drivers.ErrUnsupported); unsupported != !cgoDriver {
		t.Fatalf("%s cgo=%v: %v", runtime.GOOS, cgoDriver, err)
	}
}
