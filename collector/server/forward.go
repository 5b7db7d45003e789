package server

import (
	"errors"
	"fmt"

	"github.com/mira-project/mira/collector/consolidate"
)

// forwarding re-exports consolidated biflows (collector.yaml forward):
// the records received are also fed to a streaming Consolidator, whose
// completed biflows go as RFC 5103 IPFIX to every forward URL.
type forwarding struct {
	cons *consolidate.Consumer
	fws  []*consolidate.Forwarder
	// paced are the forward exporters whose UDP pacing holds the
	// consolidation only so long while the collector runs.
	paced []interface{ PaceFully() }
}

func (s *Server) startForward() error {
	if len(s.cfg.Forward) == 0 {
		return nil
	}
	if s.ForwardTo == nil {
		return errors.New("collector: forward: no biflow exporter (Server.ForwardTo is not set)")
	}
	f := &forwarding{}
	for _, u := range s.cfg.Forward {
		e, err := s.ForwardTo(u)
		if err != nil {
			for _, x := range f.fws {
				x.Close()
			}
			return fmt.Errorf("collector: forward: %w", err)
		}
		f.fws = append(f.fws, consolidate.NewForwarder(e))
		if p, ok := e.(interface{ PaceFully() }); ok {
			f.paced = append(f.paced, p)
		}
	}
	c := consolidate.New(&consolidate.Config{Sink: func(b *consolidate.Biflow) {
		for _, fw := range f.fws {
			fw.Sink(b)
		}
	}})
	f.cons = consolidate.NewConsumer(c)
	s.fwd = f
	return nil
}

// stopForward completes every pending connection, sends it and closes
// the forwarders; the listeners must have stopped.
func (s *Server) stopForward() {
	f := s.fwd
	if f == nil {
		return
	}
	// The listeners have stopped: the last biflows may take the whole
	// pace of a UDP forward target (exporter.Exporter.PaceFully).
	for _, p := range f.paced {
		p.PaceFully()
	}
	f.cons.Do(func(c *consolidate.Consolidator) {
		c.Flush()
		st := c.Stats()
		s.log.Info("forwarded biflows", "biflows", st.Biflows, "paired", st.Paired, "cross_probe", st.CrossProbe, "duplicates", st.Duplicates)
	})
	var errs []error
	for i, fw := range f.fws {
		if err := fw.Close(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.cfg.Forward[i], err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		s.log.Error("forward", "err", err)
	}
}
