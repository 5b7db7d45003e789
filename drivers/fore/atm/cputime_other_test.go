//go:build !linux

package atm

import "time"

func threadCPU() time.Duration { return 0 }
