package report

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	"github.com/mira-project/mira/collector/store"
)

// dirKey identifies one direction of a connection, without the VLAN
// (two probes may see it on links with different tags).
type dirKey struct {
	src, dst     netip.Addr
	sport, dport uint16
	proto        uint8
}

// dedupFlows drops the observations of a flow direction that other
// probes (store origins) also reported, with the policy of package
// consolidate: records of one direction whose times overlap (within
// window) form one observation per origin (an origin's records are
// summed); the observation with the highest selection probability is
// kept, ties going to more packets, then to the lower origin name. It
// returns the kept flows (flows itself when nothing was dropped), the
// number of dropped observations per connection, and their total.
func dedupFlows(flows []store.StoredFlow, window int64) ([]store.StoredFlow, map[connKey]int, int) {
	multi := false
	for i := 1; i < len(flows); i++ {
		if flows[i].Origin != flows[0].Origin {
			multi = true
			break
		}
	}
	if !multi {
		return flows, nil, 0
	}
	groups := map[dirKey][]int{}
	for i := range flows {
		r := &flows[i].Record
		k := dirKey{r.Src.Unmap(), r.Dst.Unmap(), r.Sport, r.Dport, r.Proto}
		groups[k] = append(groups[k], i)
	}
	drop := make([]bool, len(flows))
	merged := map[connKey]int{}
	total := 0
	type obs struct {
		origin  store.Origin
		prob    float64
		packets uint64
	}
	var cluster []int
	var list []obs
	settle := func() {
		if len(cluster) < 2 {
			return
		}
		list = list[:0]
		for _, i := range cluster {
			f := &flows[i]
			p := 1 / float64(max(f.Record.SamplingPacketInterval, 1)*max(f.Record.SamplingFlowInterval, 1))
			j := slices.IndexFunc(list, func(o obs) bool { return o.origin == f.Origin })
			if j < 0 {
				list = append(list, obs{origin: f.Origin, prob: p})
				j = len(list) - 1
			}
			list[j].prob = min(list[j].prob, p)
			list[j].packets += f.Record.Packets
		}
		if len(list) < 2 {
			return
		}
		best := slices.MaxFunc(list, func(a, b obs) int {
			if c := cmp.Compare(a.prob, b.prob); c != 0 {
				return c
			}
			if c := cmp.Compare(a.packets, b.packets); c != 0 {
				return c
			}
			// Lower name wins: compare reversed.
			return cmp.Compare(originName(b.origin), originName(a.origin))
		})
		for _, i := range cluster {
			if flows[i].Origin != best.origin {
				drop[i] = true
			}
		}
		k, _ := keyOf(&flows[cluster[0]].Record)
		merged[k] += len(list) - 1
		total += len(list) - 1
	}
	for _, idx := range groups {
		if len(idx) < 2 {
			continue
		}
		slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(flows[a].Record.First, flows[b].Record.First) })
		cluster = cluster[:0]
		var end int64
		for _, i := range idx {
			r := &flows[i].Record
			if len(cluster) > 0 && r.First > satAdd(end, window) {
				settle()
				cluster = cluster[:0]
			}
			if len(cluster) == 0 || r.Last > end {
				end = r.Last
			}
			cluster = append(cluster, i)
		}
		settle()
	}
	if total == 0 {
		return flows, nil, 0
	}
	kept := make([]store.StoredFlow, 0, len(flows)-total)
	for i := range flows {
		if !drop[i] {
			kept = append(kept, flows[i])
		}
	}
	return kept, merged, total
}

func originName(o store.Origin) string { return fmt.Sprintf("%s/%d", o.Exporter, o.Domain) }
