package probe

import (
	"time"

	"github.com/mira-project/mira/drivers"
	"github.com/mira-project/mira/drivers/afpacket"
)

func init() {
	openAFPacket = func(name string, snaplen int, promisc bool) (drivers.Source, error) {
		// A poll timeout lets the reader hand over partly filled
		// batches while traffic is light.
		s, err := afpacket.Open(name, &afpacket.Config{Snaplen: snaplen, NoPromiscuous: !promisc, PollTimeout: 100 * time.Millisecond})
		if err != nil {
			return nil, err
		}
		return s, nil
	}
}
