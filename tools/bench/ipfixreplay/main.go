// Command ipfixreplay sends the IPFIX messages of RFC 5655 files (as
// written by `mira-probe --export file:///dir`) to a collector over UDP,
// one message per datagram, at a controlled rate. It is the load
// generator of tools/bench/collector.sh.
//
//	ipfixreplay -to 127.0.0.1:4739 [-rate 20000] [-loops 1] FILE...
//
// With -loops N the files are sent N times; pass k (from 0) adds k<<16 to
// every observation domain id, so each pass is a fresh sequence-number
// space and the collectors see no loss or reordering from the repetition.
// It prints the messages, bytes and elapsed time to standard error.
package main

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"time"
)

// ipfixHeaderLen is the size of the IPFIX message header (RFC 7011 §3.1).
const ipfixHeaderLen = 16

// splitMessages cuts an RFC 5655 byte stream into messages. Each message
// aliases b. It fails, naming the input and offset, where the stream
// stops looking like IPFIX.
func splitMessages(name string, b []byte) ([][]byte, error) {
	var msgs [][]byte
	for off := 0; off < len(b); {
		if len(b)-off < ipfixHeaderLen {
			return msgs, fmt.Errorf("%s: offset %d: truncated message header (%d bytes left)", name, off, len(b)-off)
		}
		if v := binary.BigEndian.Uint16(b[off:]); v != 10 {
			return msgs, fmt.Errorf("%s: offset %d: version %d, want 10", name, off, v)
		}
		l := int(binary.BigEndian.Uint16(b[off+2:]))
		if l < ipfixHeaderLen {
			return msgs, fmt.Errorf("%s: offset %d: message length %d below the header's", name, off, l)
		}
		if off+l > len(b) {
			return msgs, fmt.Errorf("%s: offset %d: message length %d runs past the end of the file", name, off, l)
		}
		msgs = append(msgs, b[off:off+l:off+l])
		off += l
	}
	return msgs, nil
}

// pacer spaces sends rate per second apart, sleeping only when more than
// a millisecond ahead so the sleeps' granularity does not cap the rate.
type pacer struct {
	start    time.Time
	interval time.Duration
	n        int64
}

func (p *pacer) wait() {
	if p.interval <= 0 {
		return
	}
	p.n++
	due := p.start.Add(time.Duration(p.n) * p.interval)
	if ahead := time.Until(due); ahead > time.Millisecond {
		time.Sleep(ahead)
	}
}

func main() {
	to := flag.String("to", "127.0.0.1:4739", "collector address (UDP)")
	rate := flag.Float64("rate", 20000, "messages per second (0: as fast as possible)")
	loops := flag.Int("loops", 1, "send the files this many times")
	flag.Parse()
	if flag.NArg() == 0 || *loops < 1 || *rate < 0 {
		fmt.Fprintln(os.Stderr, "usage: ipfixreplay -to HOST:PORT [-rate MSGS_PER_S] [-loops N] FILE...")
		os.Exit(2)
	}
	if err := replay(*to, *rate, *loops, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "ipfixreplay:", err)
		os.Exit(1)
	}
}

func replay(to string, rate float64, loops int, files []string) error {
	var msgs [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		m, err := splitMessages(f, b)
		if err != nil {
			return err
		}
		msgs = append(msgs, m...)
	}
	if len(msgs) == 0 {
		return errors.New("no IPFIX messages in the files")
	}
	c, err := net.Dial("udp", to)
	if err != nil {
		return err
	}
	defer c.Close()
	p := pacer{start: time.Now()}
	if rate > 0 {
		p.interval = time.Duration(float64(time.Second) / rate)
	}
	buf := make([]byte, 65535)
	var sent, bytes int64
	for k := 0; k < loops; k++ {
		for _, m := range msgs {
			b := buf[:len(m)]
			copy(b, m)
			d := binary.BigEndian.Uint32(b[12:])
			binary.BigEndian.PutUint32(b[12:], d+uint32(k)<<16)
			p.wait()
			if _, err := c.Write(b); err != nil {
				return fmt.Errorf("send message %d: %w", sent, err)
			}
			sent++
			bytes += int64(len(b))
		}
	}
	el := time.Since(p.start)
	fmt.Fprintf(os.Stderr, "ipfixreplay: sent %d messages, %d bytes in %.3fs (%.0f messages/s)\n",
		sent, bytes, el.Seconds(), float64(sent)/el.Seconds())
	return nil
}
