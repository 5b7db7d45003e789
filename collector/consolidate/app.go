package consolidate

import (
	"maps"

	"github.com/mira-project/mira/flow"
	"github.com/mira-project/mira/internal/slab"
)

// appRec is a pending connection's application metadata (flow.App) with
// its names interned (Consolidator.strs): 24 bytes and no pointers
// instead of 88 bytes with five string headers, and one copy of a name
// that many connections carry (a popular server's) instead of one per
// record.
type appRec struct {
	host, server, alpn, dns, ftp uint32
	rcode                        uint8
	response                     bool
}

// strTab interns strings, counting their uses; index 0 is "".
type strTab struct {
	ix map[string]uint32
	s  slab.Slab[strEntry]
}

type strEntry struct {
	s    string
	refs uint32
}

// str returns the index of s, counting one more use.
func (t *strTab) str(s string) uint32 {
	if s == "" {
		return 0
	}
	if t.ix == nil {
		t.ix = map[string]uint32{}
	}
	i, ok := t.ix[s]
	if !ok {
		i = t.s.Alloc()
		*t.s.At(i) = strEntry{s: s}
		t.ix[s] = i
	}
	t.s.At(i).refs++
	return i
}

// unref counts one use of index i less, forgetting the string at none.
func (t *strTab) unref(i uint32) {
	if i == 0 {
		return
	}
	x := t.s.At(i)
	if x.refs--; x.refs == 0 {
		delete(t.ix, x.s)
		*x = strEntry{}
		t.s.Release(i)
	}
}

func (t *strTab) at(i uint32) string {
	if i == 0 {
		return ""
	}
	return t.s.At(i).s
}

func (t *strTab) clone() strTab {
	return strTab{ix: maps.Clone(t.ix), s: t.s.Clone(nil)}
}

// set makes *id the index of s (interned), releasing the one it had.
func (t *strTab) set(id *uint32, s string) {
	if t.at(*id) == s {
		return
	}
	old := *id
	*id = t.str(s)
	t.unref(old)
}

// app returns the metadata x holds.
func (c *Consolidator) app(x *appRec) flow.App {
	return flow.App{HTTPHost: c.strs.at(x.host), ServerName: c.strs.at(x.server), ALPN: c.strs.at(x.alpn),
		DNSName: c.strs.at(x.dns), DNSRcode: x.rcode, DNSResponse: x.response, FTPData: c.strs.at(x.ftp)}
}

// mergeAppRec merges a record's metadata into x (mergeApp).
func (c *Consolidator) mergeAppRec(x *appRec, r *flow.App) {
	a := c.app(x)
	mergeApp(&a, r)
	c.strs.set(&x.host, a.HTTPHost)
	c.strs.set(&x.server, a.ServerName)
	c.strs.set(&x.alpn, a.ALPN)
	c.strs.set(&x.dns, a.DNSName)
	c.strs.set(&x.ftp, a.FTPData)
	x.rcode, x.response = a.DNSRcode, a.DNSResponse
}

// releaseApp forgets x's names.
func (c *Consolidator) releaseApp(x *appRec) {
	for _, i := range [...]uint32{x.host, x.server, x.alpn, x.dns, x.ftp} {
		c.strs.unref(i)
	}
	*x = appRec{}
}
