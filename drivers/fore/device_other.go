//go:build !(linux && cgo)

package fore

import (
	"fmt"

	"github.com/mira-project/mira/drivers"
)

// OpenDevice opens a capture device node. This build has no cgo (or is
// not Linux), so the driver is absent.
func OpenDevice(path string) (Device, error) {
	return nil, fmt.Errorf("fore: open %s: the capture device driver needs linux and cgo: %w", path, drivers.ErrUnsupported)
}

const cgoDriver = false
