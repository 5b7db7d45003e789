package afpacket

import (
	"encoding/binary"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/mira-project/mira/drivers"
)

// Offsets in the TPACKET_V3 block descriptor (struct tpacket_block_desc
// with struct tpacket_hdr_v1) and packet header (struct tpacket3_hdr),
// from linux/if_packet.h.
const (
	bdBlockStatus  = 8
	bdNumPkts      = 12
	bdOffsetFirst  = 16
	bdHeaderLen    = 48
	phNextOffset   = 0
	phSec          = 4
	phNsec         = 8
	phSnaplen      = 12
	phLen          = 16
	phStatus       = 20
	phMac          = 24
	phVlanTCI      = 32
	phVlanTPID     = 36
	phHeaderLen    = 48
	sllPkttypeOff  = phHeaderLen + 10 // struct sockaddr_ll follows, aligned
	vlanHeaderSize = 4
)

// Source is a live TPACKET_V3 capture on one interface. It implements
// drivers.Source.
type Source struct {
	mu     sync.Mutex // held by Next; Close takes it to unmap the ring
	closed atomic.Bool

	fd     int
	efd    int // eventfd: Close writes it to wake a Next blocked in poll
	ring   []byte
	cfg    Config
	ifaces []drivers.Interface
	link   drivers.LinkType
	// loopback: every packet crosses the interface twice, once
	// outgoing and once incoming; the filter keeps the incoming copy.
	loopback bool
	pollfds  [2]unix.PollFd
	timeout  int // poll timeout in ms, -1 for none

	blockSize int
	blocks    int
	cur       int    // current block
	held      bool   // the current block is ours (TP_STATUS_USER) until released
	remaining int    // packets left in the current block
	pkt       int    // ring offset of the next packet header
	scratch   []byte // VLAN-restored frame for Next
	arena     []byte // VLAN-restored frames for NextBatch, allocated by its first call

	packets, octets, errors atomic.Uint64
	statsMu                 sync.Mutex
	drops, freezes          uint64 // accumulated kernel counters
}

var _ drivers.Source = (*Source)(nil)

// Open starts capturing on the named interface of the calling thread's
// network namespace. A nil cfg means the defaults.
func Open(iface string, cfg *Config) (*Source, error) {
	c := cfg.withDefaults()
	pageSize := os.Getpagesize()
	if c.BlockSize%pageSize != 0 {
		return nil, fmt.Errorf("afpacket: open %s: block size %d is not a multiple of the page size %d", iface, c.BlockSize, pageSize)
	}
	if c.FanoutGroup < 0 || c.FanoutGroup > 0xffff {
		return nil, fmt.Errorf("afpacket: open %s: fanout group %d out of range 1..65535", iface, c.FanoutGroup)
	}
	// Protocol 0: the socket receives nothing until bind, so no packet
	// reaches it before the ring and filter are in place.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, opError(iface, "socket", err)
	}
	s := &Source{fd: fd, efd: -1, cfg: c, blockSize: c.BlockSize, blocks: c.BlockCount}
	if err := s.setup(iface); err != nil {
		s.release()
		return nil, err
	}
	return s, nil
}

// OpenFanout opens n sockets on the interface joined in a new fanout
// group of the given mode, so that the kernel spreads the interface's
// packets over them (with FanoutHash both directions of a flow reach one
// socket). The group id is chosen by the kernel among unused ones
// (PACKET_FANOUT_FLAG_UNIQUEID), so another process's group is never
// joined by accident; cfg.FanoutGroup is ignored. Fragments of an IP
// datagram hash on their addresses only and reach one socket too.
func OpenFanout(iface string, n int, mode FanoutMode, cfg *Config) ([]*Source, error) {
	if n < 1 {
		return nil, fmt.Errorf("afpacket: open %s: fanout of %d sockets", iface, n)
	}
	c := cfg.withDefaults()
	c.FanoutGroup, c.FanoutMode = 0, mode
	// A socket receives every packet from bind on, but can join a group
	// only once bound: the sockets refuse all packets (a filter returning
	// 0) until every one has joined, so none sees a packet another also
	// gets. Then they all start at once.
	c.paused = true
	var out []*Source
	fail := func(err error) ([]*Source, error) {
		for _, s := range out {
			s.Close()
		}
		return nil, err
	}
	group := 0
	for i := range n {
		s, err := Open(iface, &c)
		if err != nil {
			return fail(err)
		}
		out = append(out, s)
		arg := group | int(mode)<<16
		if i == 0 {
			arg = int(mode|unix.PACKET_FANOUT_FLAG_UNIQUEID) << 16
		}
		if err := unix.SetsockoptInt(s.fd, unix.SOL_PACKET, unix.PACKET_FANOUT, arg); err != nil {
			return fail(opError(iface, "join fanout group", err))
		}
		if i == 0 {
			v, err := unix.GetsockoptInt(s.fd, unix.SOL_PACKET, unix.PACKET_FANOUT)
			if err != nil {
				return fail(opError(iface, "read fanout group", err))
			}
			group = v & 0xffff
		}
	}
	for _, s := range out {
		if err := s.attach(filterProgram(c.Snaplen, s.loopback)); err != nil {
			return fail(opError(iface, "attach snaplen filter", err))
		}
	}
	return out, nil
}

func opError(iface, op string, err error) error {
	return fmt.Errorf("afpacket: %s: %s: %w", iface, op, err)
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (s *Source) setup(iface string) error {
	c := s.cfg
	ifr, err := unix.NewIfreq(iface)
	if err != nil {
		return opError(iface, "interface name", err)
	}
	if err := unix.IoctlIfreq(s.fd, unix.SIOCGIFINDEX, ifr); err != nil {
		return opError(iface, "interface index", err)
	}
	index := int(ifr.Uint32())
	if err := unix.IoctlIfreq(s.fd, unix.SIOCGIFHWADDR, ifr); err != nil {
		return opError(iface, "hardware type", err)
	}
	switch hw := ifr.Uint16(); hw {
	case unix.ARPHRD_ETHER, unix.ARPHRD_LOOPBACK:
		s.link = drivers.LinkEthernet
		s.loopback = hw == unix.ARPHRD_LOOPBACK
	case unix.ARPHRD_NONE, unix.ARPHRD_PPP, unix.ARPHRD_RAWIP, unix.ARPHRD_TUNNEL, unix.ARPHRD_TUNNEL6:
		s.link = drivers.LinkRaw
	default:
		return opError(iface, "hardware type", fmt.Errorf("ARPHRD %d: %w", hw, drivers.ErrUnsupported))
	}
	if err := unix.SetsockoptInt(s.fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V3); err != nil {
		return opError(iface, "set TPACKET_V3", err)
	}
	prog := filterProgram(c.Snaplen, s.loopback)
	if c.paused {
		prog = []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0}}
	}
	if err := s.attach(prog); err != nil {
		return opError(iface, "attach snaplen filter", err)
	}
	req := unix.TpacketReq3{
		Block_size:     uint32(c.BlockSize),
		Block_nr:       uint32(c.BlockCount),
		Frame_size:     uint32(c.BlockSize),
		Frame_nr:       uint32(c.BlockCount),
		Retire_blk_tov: uint32(max(1, c.BlockTimeout.Milliseconds())),
	}
	if err := unix.SetsockoptTpacketReq3(s.fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
		return opError(iface, "set up ring", err)
	}
	s.ring, err = unix.Mmap(s.fd, 0, c.BlockSize*c.BlockCount, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_LOCKED|unix.MAP_POPULATE)
	if err != nil {
		// MAP_LOCKED fails under a low RLIMIT_MEMLOCK; the ring works
		// without it.
		s.ring, err = unix.Mmap(s.fd, 0, c.BlockSize*c.BlockCount, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		if err != nil {
			return opError(iface, "map ring", err)
		}
	}
	sa := unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: index}
	if err := unix.Bind(s.fd, &sa); err != nil {
		return opError(iface, "bind", err)
	}
	if !c.NoPromiscuous {
		mreq := unix.PacketMreq{Ifindex: int32(index), Type: unix.PACKET_MR_PROMISC}
		if err := unix.SetsockoptPacketMreq(s.fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mreq); err != nil {
			return opError(iface, "promiscuous membership", err)
		}
	}
	if c.FanoutGroup != 0 {
		arg := c.FanoutGroup | int(c.FanoutMode)<<16
		if err := unix.SetsockoptInt(s.fd, unix.SOL_PACKET, unix.PACKET_FANOUT, arg); err != nil {
			return opError(iface, "join fanout group", err)
		}
	}
	s.efd, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return opError(iface, "eventfd", err)
	}
	s.pollfds = [2]unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLIN}, {Fd: int32(s.efd), Events: unix.POLLIN}}
	s.timeout = -1
	if c.PollTimeout > 0 {
		s.timeout = int(max(1, c.PollTimeout.Milliseconds()))
	}
	s.scratch = make([]byte, c.Snaplen+vlanHeaderSize)
	s.ifaces = []drivers.Interface{{Name: iface, LinkType: s.link, Snaplen: c.Snaplen, Index: index}}
	// Read and discard the counters so Stats counts from now.
	if _, err := unix.GetsockoptTpacketStatsV3(s.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS); err != nil {
		return opError(iface, "read statistics", err)
	}
	return nil
}

func (s *Source) attach(prog []unix.SockFilter) error {
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	return unix.SetsockoptSockFprog(s.fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fprog)
}

// Classic BPF ancillary load of the packet type (linux/filter.h:
// SKF_AD_OFF + SKF_AD_PKTTYPE).
const skfAdPkttype = 0xfffff000 + 4

// filterProgram is the socket filter: it keeps snaplen bytes of every
// packet (tp_len stays the wire length) and, on a loopback interface,
// refuses the outgoing copy of each packet so that every packet is
// delivered once, as libpcap does. Filtered packets never reach the
// ring and are not counted as drops.
func filterProgram(snaplen int, loopback bool) []unix.SockFilter {
	keep := unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: uint32(snaplen)}
	if !loopback {
		return []unix.SockFilter{keep}
	}
	return []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: skfAdPkttype},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: unix.PACKET_OUTGOING, Jt: 0, Jf: 1},
		{Code: unix.BPF_RET | unix.BPF_K, K: 0},
		keep,
	}
}

// release frees the kernel resources; the caller owns s.mu or is Open.
func (s *Source) release() {
	if s.ring != nil {
		unix.Munmap(s.ring)
		s.ring = nil
	}
	if s.fd >= 0 {
		unix.Close(s.fd)
		s.fd = -1
	}
	if s.efd >= 0 {
		unix.Close(s.efd)
		s.efd = -1
	}
}

func (s *Source) u32(off int) uint32 {
	return binary.NativeEndian.Uint32(s.ring[off:])
}

func (s *Source) u16(off int) uint16 {
	return binary.NativeEndian.Uint16(s.ring[off:])
}

// blockStatus reads a block's status word, which the kernel writes
// concurrently.
func (s *Source) blockStatus(block int) *uint32 {
	return (*uint32)(unsafe.Pointer(&s.ring[block*s.blockSize+bdBlockStatus]))
}

// Next returns the next frame. It blocks until one arrives, Close is
// called (ErrClosed) or Config.PollTimeout passes (ErrTimeout). The frame
// aliases the kernel ring (or, for a frame whose VLAN tag the kernel
// stripped, the source's scratch buffer, where the tag is put back) and
// is valid until the next call to Next or Close.
func (s *Source) Next() ([]byte, drivers.CaptureInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if s.closed.Load() {
			return nil, drivers.CaptureInfo{}, ErrClosed
		}
		if s.remaining > 0 {
			data, ci, ok := s.packet(s.scratch)
			if ok {
				return data, ci, nil
			}
			continue
		}
		if s.held {
			atomic.StoreUint32(s.blockStatus(s.cur), unix.TP_STATUS_KERNEL)
			s.held = false
			s.cur = (s.cur + 1) % s.blocks
		}
		if atomic.LoadUint32(s.blockStatus(s.cur))&unix.TP_STATUS_USER != 0 {
			base := s.cur * s.blockSize
			s.held = true
			s.remaining = int(s.u32(base + bdNumPkts))
			s.pkt = base + int(s.u32(base+bdOffsetFirst))
			continue
		}
		s.pollfds[0].Revents, s.pollfds[1].Revents = 0, 0
		n, err := unix.Poll(s.pollfds[:], s.timeout)
		switch {
		case err == unix.EINTR:
		case err != nil:
			return nil, drivers.CaptureInfo{}, opError(s.ifaces[0].Name, "poll", err)
		case n == 0:
			return nil, drivers.CaptureInfo{}, ErrTimeout
		}
	}
}

// NextBatch fills frames and cis with up to len(frames) packets (cis
// must be as long), all from one ring block, and returns how many. Like
// Next it blocks until a packet arrives, Close is called (ErrClosed) or
// Config.PollTimeout passes (ErrTimeout). The frames are read in place:
// they alias the kernel ring (frames whose VLAN tag is put back, the
// source's scratch memory) and stay valid until the next call of
// NextBatch or Next, or Close. The ring block is handed back to the
// kernel only then, so a caller that keeps frames for long holds ring
// space.
func (s *Source) NextBatch(frames [][]byte, cis []drivers.CaptureInfo) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	max := min(len(frames), len(cis))
	if max == 0 {
		return 0, nil
	}
	arena := s.arena[:0]
	for {
		if s.closed.Load() {
			return 0, ErrClosed
		}
		n := 0
		for s.remaining > 0 && n < max {
			// Room for one frame with its VLAN tag put back.
			if cap(arena)-len(arena) < s.cfg.Snaplen+vlanHeaderSize {
				if s.arena == nil {
					s.arena = make([]byte, 0, batchArenaFrames*(s.cfg.Snaplen+vlanHeaderSize))
					arena = s.arena
				} else if n > 0 {
					break
				}
			}
			data, ci, ok := s.packet(arena[len(arena) : len(arena)+s.cfg.Snaplen+vlanHeaderSize])
			if !ok {
				continue
			}
			if unsafe.SliceData(data) == unsafe.SliceData(arena[len(arena):cap(arena)]) {
				arena = arena[:len(arena)+len(data)]
			}
			frames[n], cis[n] = data, ci
			n++
		}
		if n > 0 {
			return n, nil
		}
		if s.held {
			atomic.StoreUint32(s.blockStatus(s.cur), unix.TP_STATUS_KERNEL)
			s.held = false
			s.cur = (s.cur + 1) % s.blocks
		}
		if atomic.LoadUint32(s.blockStatus(s.cur))&unix.TP_STATUS_USER != 0 {
			base := s.cur * s.blockSize
			s.held = true
			s.remaining = int(s.u32(base + bdNumPkts))
			s.pkt = base + int(s.u32(base+bdOffsetFirst))
			continue
		}
		s.pollfds[0].Revents, s.pollfds[1].Revents = 0, 0
		n, err := unix.Poll(s.pollfds[:], s.timeout)
		switch {
		case err == unix.EINTR:
		case err != nil:
			return 0, opError(s.ifaces[0].Name, "poll", err)
		case n == 0:
			return 0, ErrTimeout
		}
	}
}

// batchArenaFrames is how many VLAN-tagged frames one NextBatch can put
// back together (the batch ends early when the arena is full).
const batchArenaFrames = 8

// Backlog returns how many ring blocks hold packets not yet read (the
// block being read included) and how many blocks the ring has: the
// capture's queue fill. It is safe to call from any goroutine; after
// Close it returns 0 used blocks.
func (s *Source) Backlog() (used, total int) {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	if s.closed.Load() {
		return 0, s.blocks
	}
	for b := range s.blocks {
		if atomic.LoadUint32(s.blockStatus(b))&unix.TP_STATUS_USER != 0 {
			used++
		}
	}
	return used, s.blocks
}

// packet decodes the packet header at s.pkt and advances. ok is false for
// a descriptor that points outside its block, which is counted and ends
// the block.
func (s *Source) packet(scratch []byte) (data []byte, ci drivers.CaptureInfo, ok bool) {
	p := s.pkt
	blockEnd := (s.cur + 1) * s.blockSize
	s.remaining--
	if p+sllPkttypeOff+1 > blockEnd {
		s.errors.Add(1)
		s.remaining = 0
		return nil, ci, false
	}
	snap := int(s.u32(p + phSnaplen))
	mac := int(s.u16(p + phMac))
	if p+mac+snap > blockEnd {
		s.errors.Add(1)
		s.remaining = 0
		return nil, ci, false
	}
	if s.remaining > 0 {
		s.pkt = p + int(s.u32(p+phNextOffset))
	}
	length := int(s.u32(p + phLen))
	data = s.ring[p+mac : p+mac+snap : p+mac+snap]
	status := s.u32(p + phStatus)
	if status&unix.TP_STATUS_VLAN_VALID != 0 && s.link == drivers.LinkEthernet && snap >= 12 && snap+vlanHeaderSize <= s.cfg.Snaplen+vlanHeaderSize {
		data = s.withVLAN(scratch[:len(data)+vlanHeaderSize], data, uint16(s.u32(p+phVlanTCI)), s.u16(p+phVlanTPID), status)
		length += vlanHeaderSize
		snap = len(data)
	}
	ci.Timestamp = int64(s.u32(p+phSec))*1e9 + int64(s.u32(p+phNsec))
	ci.CaptureLength = snap
	ci.Length = length
	ci.LinkType = s.link
	ci.Direction = drivers.DirIn
	if s.ring[p+sllPkttypeOff] == unix.PACKET_OUTGOING {
		ci.Direction = drivers.DirOut
	}
	s.packets.Add(1)
	s.octets.Add(uint64(length))
	return data, ci, true
}

// withVLAN puts back the 802.1Q tag the kernel took out of the frame,
// writing the frame to out (len(data)+4 bytes).
func (s *Source) withVLAN(out, data []byte, tci, tpid uint16, status uint32) []byte {
	if status&unix.TP_STATUS_VLAN_TPID_VALID == 0 || tpid == 0 {
		tpid = 0x8100
	}
	// The result is cut to the snaplen.
	copy(out, data[:12])
	binary.BigEndian.PutUint16(out[12:], tpid)
	binary.BigEndian.PutUint16(out[14:], tci)
	copy(out[16:], data[12:])
	return out[:min(len(out), s.cfg.Snaplen)]
}

// Interfaces returns the capture interface.
func (s *Source) Interfaces() []drivers.Interface { return s.ifaces }

// Stats returns the counters: packets and octets delivered by Next,
// frames the kernel dropped because the ring was full (accumulated over
// PACKET_STATISTICS reads, which reset the kernel's counters), and bad
// ring descriptors. It is safe to call from any goroutine.
func (s *Source) Stats() drivers.Stats {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	s.readKernelStats()
	return drivers.Stats{
		Packets: s.packets.Load(),
		Octets:  s.octets.Load(),
		Drops:   s.drops,
		Errors:  s.errors.Load(),
	}
}

// QueueFreezes returns how many times the kernel froze the ring queue
// because every block was full (TPACKET_V3 tp_freeze_q_cnt, accumulated).
func (s *Source) QueueFreezes() uint64 {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	s.readKernelStats()
	return s.freezes
}

// readKernelStats adds the kernel's counters since the last read; the
// caller holds statsMu. After Close the last values stay.
func (s *Source) readKernelStats() {
	if s.closed.Load() {
		return
	}
	st, err := unix.GetsockoptTpacketStatsV3(s.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	if err != nil {
		return
	}
	s.drops += uint64(st.Drops)
	s.freezes += uint64(st.Freeze_q_cnt)
}

// Close stops the capture and releases the socket and ring. It may be
// called from any goroutine, also while Next is blocked: Next then
// returns ErrClosed. Calling it again does nothing.
func (s *Source) Close() error {
	s.statsMu.Lock()
	s.readKernelStats()
	already := s.closed.Swap(true)
	s.statsMu.Unlock()
	if already {
		return nil
	}
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	unix.Write(s.efd, one[:])
	s.mu.Lock()
	defer s.mu.Unlock()
	s.release()
	return nil
}
