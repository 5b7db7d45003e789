//go:build !linux

package exporter

import (
	"errors"
	"net"
)

// unacked is not known outside Linux: the spool then releases messages
// by time alone (SpoolConfig.Window).
func unacked(net.Conn) (int, error) { return 0, errors.ErrUnsupported }
