package probe

import (
	"time"

	"github.com/mira-project/mira/drivers"
	"github.com/mira-project/mira/drivers/afpacket"
)

func init() {
	openAFPacket = func(name string, snaplen int, promisc bool, workers int) ([]drivers.Source, error) {
		// A poll timeout lets the workers advance their flow tables'
		// clocks and publish counters while traffic is light.
		cfg := &afpacket.Config{Snaplen: snaplen, NoPromiscuous: !promisc, PollTimeout: 100 * time.Millisecond}
		if workers <= 1 {
			s, err := afpacket.Open(name, cfg)
			if err != nil {
				return nil, err
			}
			return []drivers.Source{s}, nil
		}
		// One socket per worker, joined by flow-hash fanout: the kernel
		// spreads flows over the workers, both directions of a flow to
		// one worker.
		socks, err := afpacket.OpenFanout(name, workers, afpacket.FanoutHash, cfg)
		if err != nil {
			return nil, err
		}
		out := make([]drivers.Source, len(socks))
		for i, s := range socks {
			out[i] = s
		}
		return out, nil
	}
}
