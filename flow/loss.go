package flow

// Loss counts what was lost on the way from the wire to the store, by
// stage. Every MIRA component that can lose a packet or a record counts
// it in one of these stages; the probe sends its stages in IPFIX options
// (ipfix.LedgerOptionsTemplate), the collector adds its own, and reports
// show the sum ("Loss"). Packets and records are counted in the unit the
// stage loses: ring, queue and regulation count packets; the others
// count records (eviction counts flows ended early for want of table
// space: their records are not lost but split, and are listed because
// they change what a report shows).
type Loss struct {
	Ring       uint64 // packets the kernel ring dropped before the probe read them
	Queue      uint64 // packets dropped because a worker queue was full
	Regulation uint64 // packets not measured because self-regulation sampled them out
	Eviction   uint64 // flows evicted early because the flow table was full
	Export     uint64 // records the exporter failed to send and did not spool
	Spool      uint64 // records dropped from a full spool (oldest first)
	Socket     uint64 // IPFIX messages the collector's sockets dropped
	Sequence   uint64 // records missing by IPFIX sequence numbers
	Malformed  uint64 // IPFIX messages or records the collector could not decode
	Store      uint64 // records the collector decoded but could not store
}

// LossStages names the stages of Loss in the order of the data path; the
// names are the keys of reports' "loss" objects and of the stage label of
// the mira_*_loss_total metrics.
var LossStages = [...]string{"ring", "queue", "regulation", "eviction", "export", "spool", "socket", "sequence", "malformed", "store"}

// Counts returns the counters in the order of LossStages.
func (l *Loss) Counts() [len(LossStages)]uint64 {
	return [...]uint64{l.Ring, l.Queue, l.Regulation, l.Eviction, l.Export, l.Spool, l.Socket, l.Sequence, l.Malformed, l.Store}
}

// Counter returns a pointer to the counter of stage i (LossStages order).
func (l *Loss) Counter(i int) *uint64 {
	return [...]*uint64{&l.Ring, &l.Queue, &l.Regulation, &l.Eviction, &l.Export, &l.Spool, &l.Socket, &l.Sequence, &l.Malformed, &l.Store}[i]
}

// Add adds o's counters to l.
func (l *Loss) Add(o Loss) {
	c := o.Counts()
	for i, v := range c {
		*l.Counter(i) += v
	}
}

// Total is the sum over all stages.
func (l *Loss) Total() (n uint64) {
	for _, v := range l.Counts() {
		n += v
	}
	return n
}

// Map returns stage name -> count for every stage (zeros included, so a
// report says "0" rather than nothing).
func (l *Loss) Map() map[string]uint64 {
	m := make(map[string]uint64, len(LossStages))
	for i, v := range l.Counts() {
		m[LossStages[i]] = v
	}
	return m
}
