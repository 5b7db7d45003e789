package afpacket

import (
	"fmt"
	"time"

	"github.com/mira-project/mira/drivers"
)

// ErrClosed is returned by Next after Close. It ends a reader loop the
// way io.EOF ends one over a file. It wraps drivers.ErrClosed.
var ErrClosed = fmt.Errorf("afpacket: %w", drivers.ErrClosed)

// ErrTimeout is returned by Next when Config.PollTimeout passed without a
// packet. The source stays usable. It wraps drivers.ErrTimeout.
var ErrTimeout = fmt.Errorf("afpacket: poll: %w", drivers.ErrTimeout)

// FanoutMode selects how a fanout group spreads packets over its sockets
// (PACKET_FANOUT_* values).
type FanoutMode uint16

// Fanout modes.
const (
	FanoutHash     FanoutMode = 0 // by flow hash: both directions of a flow reach one socket
	FanoutLB       FanoutMode = 1 // round robin
	FanoutCPU      FanoutMode = 2 // by receiving CPU
	FanoutRollover FanoutMode = 3
	FanoutRandom   FanoutMode = 4
	FanoutQM       FanoutMode = 5 // by recorded queue mapping
)

// Config configures a Source. The zero value, like a nil *Config, means
// the defaults.
type Config struct {
	// Snaplen is the largest number of bytes kept per packet; 0 means
	// 65535.
	Snaplen int
	// NoPromiscuous leaves the interface out of promiscuous mode; by
	// default the socket joins it (PACKET_MR_PROMISC).
	NoPromiscuous bool
	// BlockSize is the ring block size in bytes, a multiple of the page
	// size; 0 means 1 MiB.
	BlockSize int
	// BlockCount is the number of ring blocks; 0 means 64.
	BlockCount int
	// BlockTimeout is how long the kernel fills a block before handing
	// it over partly filled; 0 means 10 ms.
	BlockTimeout time.Duration
	// PollTimeout bounds how long Next waits for a packet before
	// returning ErrTimeout; 0 means wait until a packet arrives or Close.
	PollTimeout time.Duration
	// FanoutGroup, when non-zero, joins the socket to that fanout group
	// id (1..65535) with FanoutMode, to spread packets over workers.
	FanoutGroup int
	FanoutMode  FanoutMode

	paused bool // open refusing every packet (OpenFanout)
}

const (
	defaultSnaplen      = 65535
	defaultBlockSize    = 1 << 20
	defaultBlockCount   = 64
	defaultBlockTimeout = 10 * time.Millisecond
)

// withDefaults returns a copy of cfg (nil allowed) with zero fields set to
// their defaults.
func (cfg *Config) withDefaults() Config {
	var c Config
	if cfg != nil {
		c = *cfg
	}
	if c.Snaplen <= 0 {
		c.Snaplen = defaultSnaplen
	}
	if c.BlockSize <= 0 {
		c.BlockSize = defaultBlockSize
	}
	if c.BlockCount <= 0 {
		c.BlockCount = defaultBlockCount
	}
	if c.BlockTimeout <= 0 {
		c.BlockTimeout = defaultBlockTimeout
	}
	return c
}
