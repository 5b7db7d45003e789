package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/mira-project/mira/collector/report"
	"github.com/mira-project/mira/collector/store"
)

// Rollups at ingest: every committed record goes to a report.Roller,
// whose new cells are written after each commit (a transaction of their
// own, so a failure keeps them for the next one), and while no record
// arrives, at each commit interval while the Roller holds records or
// connections its horizon can still complete (idleRollups). At start the rollups
// are rebuilt from the records when the store has none (written before
// rollups existed), when the collector that kept them did not stop
// cleanly, or when the rules, AS table or window changed; at shutdown
// the Roller is flushed, so a stopped collector's rollups hold every
// stored record.

// rollupHold is how long, in wall-clock time, the rollups' horizon waits
// for records that arrive out of end order (report.RollupConfig.Hold);
// a variable so that tests can see the horizon move at once.
var rollupHold = 10 * time.Second

// rollupNow is the Roller's wall clock (its hold and its idle horizon);
// a variable so that tests can move it.
var rollupNow = time.Now

// startRollups makes the Roller, rebuilding the rollups first when they
// cannot be continued.
func (s *Server) startRollups(ctx context.Context, st *store.Store) error {
	cfg, src, err := report.LoadRollupConfig(s.cfg.Rules, s.cfg.AS)
	if err != nil {
		return fmt.Errorf("collector: rollups: %w", err)
	}
	if err := cfg.AS.Skipped(); err != nil {
		s.log.Warn("as table: lines skipped; their prefixes count as AS 0", "file", s.cfg.AS, "err", err)
	}
	src.Live = s.liveRollups
	s.rollSrc = src
	meta, err := st.RollupMeta()
	why := ""
	switch {
	case errors.Is(err, store.ErrNoRollups):
		why = "the store has none"
	case err != nil:
		return err
	case !meta.Clean:
		why = "the collector that kept them did not stop cleanly"
	case meta.Rules != cfg.RulesID || meta.AS != cfg.ASID || meta.Window != report.DefaultWindow:
		why = "the rules, AS table, pairing window or consolidation changed"
	}
	if why != "" {
		t0 := time.Now()
		if meta, err = report.Rebuild(ctx, st, cfg); err != nil {
			return fmt.Errorf("collector: rebuilding the rollups: %w", err)
		}
		s.log.Info("rollups rebuilt from the stored records", "why", why, "records", meta.Records, "took", time.Since(t0).Round(time.Millisecond))
	}
	names, err := st.NameIndex()
	if err != nil {
		return err
	}
	anns, err := st.Announcements()
	if err != nil {
		return err
	}
	if cfg.MaxDuration, err = st.MaxDuration(); err != nil {
		return err
	}
	cfg.Hold = rollupHold
	cfg.Idle, cfg.Now = true, rollupNow
	s.roll = report.NewRoller(cfg, names, anns, &meta)
	// Written at once: the meta now says unclean until the final flush.
	return s.putRollups()
}

// feedRollups gives the records of a successful commit to the Roller;
// wmu held. Names and sampling announcements committed with them are
// reloaded first when reload says they may have changed.
func (s *Server) feedRollups(list []*store.Encoded, reload bool) {
	if reload {
		if ix, err := s.st.NameIndex(); err == nil {
			s.roll.SetNames(ix)
		} else {
			s.log.Error("rollups: names", "err", err)
		}
	}
	if reload {
		if a, err := s.st.Announcements(); err == nil {
			s.roll.SetAnnouncements(a)
		} else {
			s.log.Error("rollups: sampling announcements", "err", err)
		}
	}
	for _, e := range list {
		// Held in their encoding: decoded once, when fed.
		if err := e.EachEncoded(func(first, last int64, rec []byte) error {
			return s.roll.AddEncoded(e.Origin, first, last, rec)
		}); err != nil {
			// Records this process encoded: a bug, not input.
			s.log.Error("rollups: committed record unreadable", "err", err)
		}
	}
	s.roll.Advance()
	s.rollFed = time.Now()
	s.writeRollups()
}

// idleRollups advances the Roller's horizon with the wall clock when no
// commit fed it for a commit interval and no record waits for the store
// (report.Roller.AdvanceIdle), and writes what that completed: after a
// burst of records (a capture replayed into the collector) the stored
// rollups reach them within the lag and the longest flow, plus the hold,
// instead of waiting for more records or the collector's stop. Not while
// records wait (a failing store): they are older than the wall clock
// says and would arrive late.
func (s *Server) idleRollups() {
	if s.roll == nil {
		return
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	waiting := s.pending.n > 0 || s.failing
	s.mu.Unlock()
	if waiting || time.Since(s.rollFed) < commitInterval || !s.roll.AdvanceIdle() {
		return
	}
	s.writeRollups()
}

// writeRollups writes the Roller's new cells; wmu held.
func (s *Server) writeRollups() {
	s.rollGen++
	// Logged when writes start failing and when they succeed again (a
	// full disk storing part of the records every commit interval).
	switch err := s.putRollups(); {
	case err == nil && s.rollFailing:
		s.rollFailing = false
		s.log.Info("rollups: written again")
	case err != nil && !errors.Is(err, store.ErrLocked) && !s.rollFailing:
		s.rollFailing = true
		s.log.Error("rollups: write failed; kept for the next commit", "err", err)
	}
}

// putRollups writes the Roller's new cells, merged with those a failed
// write kept; wmu held (or before Run's loop).
func (s *Server) putRollups() error {
	d := s.roll.Take()
	if s.rollKept != nil {
		for res, cells := range d.Cells {
			for k, c := range cells {
				if o := s.rollKept.Cells[res][k]; o != nil {
					o.Add(c)
				} else {
					s.rollKept.Cells[res][k] = c
				}
			}
		}
		s.rollKept.Meta = d.Meta
		d = s.rollKept
	}
	if err := s.st.PutRollups(d); err != nil {
		s.rollKept = d
		return err
	}
	s.rollKept = nil
	return nil
}

// stopRollups flushes the Roller at shutdown, after the final commit.
func (s *Server) stopRollups() {
	if s.roll == nil {
		return
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.roll.Flush()
	deadline := time.Now().Add(finalCommitWait)
	for {
		err := s.putRollups()
		if err == nil {
			return
		}
		if !errors.Is(err, store.ErrLocked) || time.Now().After(deadline) {
			s.log.Error("rollups not written at shutdown: rebuilt at the next start", "err", err)
			return
		}
	}
}

// liveRollups calls read with the cells the Roller holds but has not
// stored (report.Roller.Pending, and those a failed write kept), while
// no commit runs: the API's rollup answers cover every stored record.
func (s *Server) liveRollups(read func(map[time.Duration]map[store.RollupKey]*store.RollupCell) error) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.roll == nil {
		return read(nil)
	}
	// Requests between two commits (a page's several) share one copy:
	// a flush of what the Roller holds costs like a report over it.
	if s.rollPend != nil && s.rollPendGen == s.rollGen {
		return read(s.rollPend)
	}
	p := s.roll.Pending()
	if s.rollKept != nil {
		for res, cells := range s.rollKept.Cells {
			for k, c := range cells {
				if o := p[res][k]; o != nil {
					o.Add(c)
				} else {
					cp := *c
					cp.Symptoms = slices.Clone(c.Symptoms)
					p[res][k] = &cp
				}
			}
		}
	}
	s.rollPend, s.rollPendGen = p, s.rollGen
	return read(p)
}
