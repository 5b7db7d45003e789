package probe

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/mira-project/mira/appliance/config"
	"github.com/mira-project/mira/appliance/fastclass"
	"github.com/mira-project/mira/appliance/pipeline"
	"github.com/mira-project/mira/appliance/selection"
	"github.com/mira-project/mira/appliance/symptom"
	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/ipfix"
)

// classifiers are what a configuration gives the flow tables: the
// symptom database, the fast-class lists and the selection (capture
// scope, aggregates, sampling).
type classifiers struct {
	db   *symptom.DB
	fast *fastclass.Table
	sel  *selection.Selection
	// sum identifies the configuration sections and the files they were
	// read from, to tell whether a reload changes anything.
	sum [sha256.Size]byte
}

func (cl *classifiers) fastFunc() func(*flow.Key) uint16 {
	if cl.fast == nil {
		return nil
	}
	return cl.fast.Classify
}

// classifiers builds c's classifiers; the error names the file (and,
// for YAML, the line and key) of the first problem.
func (p *Probe) classifiers(c *config.Probe) (*classifiers, error) {
	sel, err := selection.New(&selection.Config{Aggregates: c.Aggregates, Sampling: c.Sampling}, p.ifNames)
	if err != nil {
		return nil, fmt.Errorf("probe: %w", err)
	}
	db, err := symptomDB(c.Symptoms)
	if err != nil {
		return nil, err
	}
	cl := &classifiers{db: db, sel: sel}
	if len(c.FastClass.Files) > 0 {
		if cl.fast, err = fastclass.Load(c.FastClass.Files...); err != nil {
			return nil, fmt.Errorf("probe: %w", err)
		}
	}
	h := sha256.New()
	sections, _ := json.Marshal([]any{c.Symptoms, c.FastClass, c.Aggregates, c.Sampling})
	h.Write(sections)
	files := append([]string(nil), c.FastClass.Files...)
	if !c.Symptoms.Disabled && c.Symptoms.File != "" {
		files = append(files, c.Symptoms.File)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("probe: %w", err)
		}
		fmt.Fprintf(h, "%s %d\n", f, len(b))
		h.Write(b)
	}
	h.Sum(cl.sum[:0])
	return cl, nil
}

// namesAnnouncer is an exporter that can announce new names mid-stream
// (exporter.Exporter).
type namesAnnouncer interface {
	SetNames(aggregates map[uint32]string, symptoms, categories map[uint16]string)
}

// Reload applies configuration c to the running probe (mira-probe does
// on SIGHUP): the symptom database, the fast-class lists, the
// aggregates (and sampling) and the export targets. Nothing changes
// unless all of c can be applied: a file that does not load, or a
// target that cannot be opened, makes Reload return its error with the
// old configuration still running. A change of classifiers ends every
// flow (records flowEndReason forced end, metered and named under the
// old configuration), announces the new names to every target that
// stays, then meters on under the new ones (pipeline.Reconfigure: the
// pause is counted where packets are lost, in queue or ring drops).
// Targets that the new configuration drops get no more records and are
// closed (delivering what they hold); new ones start with the new
// names. Sections that need a restart (capture, pipeline, meter, probe,
// snmp, metrics, log, drain_timeout) are logged, not applied.
func (p *Probe) Reload(c *config.Probe) error {
	p.reloadMu.Lock()
	defer p.reloadMu.Unlock()
	pipe := p.pipe.Load()
	if pipe == nil || p.stopped {
		return errors.New("probe: reload: not running")
	}
	refuse := func(err error) error {
		p.mu.Lock()
		p.refused++
		p.mu.Unlock()
		return fmt.Errorf("probe: reload refused, the running configuration stays: %w", err)
	}
	cl, err := p.classifiers(c)
	if err != nil {
		return refuse(err)
	}
	p.mu.Lock()
	cur := append([]*target(nil), p.targets...)
	oldSum := p.sum
	p.mu.Unlock()
	changed := cl.sum != oldSum

	// Targets configured alike stay (with their connections and
	// spools); new ones are opened before anything changes.
	var next, added []*target
	used := make([]bool, len(cur))
	for i, t := range cur {
		if t.fixed {
			used[i] = true
			next = append(next, t)
		}
	}
	if p.opts.Exporters == nil {
	targets:
		for _, e := range c.Export {
			for i, t := range cur {
				if !used[i] && reflect.DeepEqual(t.conf, e) {
					used[i] = true
					next = append(next, t)
					continue targets
				}
			}
			x, err := openExporter(e, p.exporterConfigWith(e, cl))
			if err != nil {
				closeTargets(added)
				return refuse(err)
			}
			t := &target{e: x, name: e.URL, conf: e}
			next, added = append(next, t), append(added, t)
		}
	}
	var gone []*target
	for i, t := range cur {
		if !used[i] {
			gone = append(gone, t)
		}
	}

	between := func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if changed {
			oldSmp := p.exportSampling()
			if old := p.sel.Load(); old != nil {
				st := old.Stats()
				p.selGone.Seen += st.Seen
				p.selGone.OutOfScope += st.OutOfScope
				p.selGone.Unsampled += st.Unsampled
			}
			p.sel.Store(cl.sel)
			p.db.Store(cl.db)
			p.fast.Store(cl.fast)
			p.sum = cl.sum
			smp := p.exportSampling()
			for _, t := range next {
				if slicesContain(added, t) {
					continue
				}
				if a, ok := t.e.(namesAnnouncer); ok {
					a.SetNames(cl.sel.AggregateNames(), symptomNames(cl.db), categoryNames(cl.fast))
				}
				if a, ok := t.e.(samplingAnnouncer); ok && !reflect.DeepEqual(oldSmp, smp) {
					a.SetSampling(announcedSampling(oldSmp, smp))
				}
			}
		}
		p.targets = next
		p.all = append(p.all, added...)
		p.reloads++
		p.lastReload = time.Now()
	}
	if changed {
		rc := pipeline.Reconfig{Symptoms: cl.db, FastClass: cl.fastFunc(), Label: cl.sel.Label()}
		if cl.sel.Active() {
			cl.sel.Filters(p.shards)
			rc.Filter = cl.sel.Filter
		}
		pipe.Reconfigure(rc, between)
	} else {
		between()
	}
	var names []string
	for _, t := range added {
		names = append(names, t.name)
	}
	var goneNames []string
	for _, t := range gone {
		goneNames = append(goneNames, t.name)
	}
	p.log.Info("configuration reloaded", "classifiers_changed", changed, "targets_added", names, "targets_removed", goneNames)
	if s := restartOnly(p.cfg, c); len(s) > 0 {
		p.log.Warn("configuration reloaded; these sections change only at the next start", "sections", strings.Join(s, ", "))
	}
	// Removed targets get no more records: deliver what they hold.
	if err := closeTargets(gone); err != nil {
		return fmt.Errorf("probe: reload: %w", err)
	}
	return nil
}

func slicesContain(ts []*target, t *target) bool {
	for _, x := range ts {
		if x == t {
			return true
		}
	}
	return false
}

// restartOnly lists the sections that differ between the running
// configuration a and b and that a reload does not apply.
func restartOnly(a, b *config.Probe) []string {
	var out []string
	for _, s := range []struct {
		name string
		x, y any
	}{
		{"probe", a.Probe, b.Probe},
		{"capture", a.Capture, b.Capture},
		{"meter", a.Meter, b.Meter},
		{"pipeline", a.Pipeline, b.Pipeline},
		{"snmp_listen", a.SNMPListen, b.SNMPListen},
		{"snmp", a.SNMP, b.SNMP},
		{"metrics", a.Metrics, b.Metrics},
		{"log", a.Log, b.Log},
		{"drain_timeout", a.DrainTimeout, b.DrainTimeout},
	} {
		if !reflect.DeepEqual(s.x, s.y) {
			out = append(out, s.name)
		}
	}
	return out
}

// ReloadFrom reads a configuration with load and applies it (Reload);
// a configuration that does not load is refused and counted like one
// that cannot be applied.
func (p *Probe) ReloadFrom(load func() (*config.Probe, error)) error {
	c, err := load()
	if err != nil {
		p.mu.Lock()
		p.refused++
		p.mu.Unlock()
		return fmt.Errorf("probe: reload refused, the running configuration stays: %w", err)
	}
	return p.Reload(c)
}

// Reloads returns how many reloads were applied and refused.
func (p *Probe) Reloads() (applied, refused uint64) {
	applied, refused, _ = p.reloadStats()
	return applied, refused
}

// reloadStats returns the reload counters and when the last reload was
// applied (zero: none since the start).
func (p *Probe) reloadStats() (applied, refused uint64, last time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.reloads, p.refused, p.lastReload
}

// announcedSampling is what a reload from sampling old to smp announces:
// smp, or, when the probe stops sampling, that it samples 1 in 1. Saying
// nothing would leave a collector scaling the records that follow by the
// last rate it heard of (nfdump scaled a probe's records after a reload
// from random 1/4 to none by 4: 137,000 packets for 65,615).
func announcedSampling(old, smp *ipfix.Sampling) *ipfix.Sampling {
	if smp == nil && old != nil && old.Interval > 1 {
		return &ipfix.Sampling{Interval: 1, Flow: old.Flow, SelectorAlgorithm: old.SelectorAlgorithm, LegacyAlgorithm: old.LegacyAlgorithm}
	}
	return smp
}
