package exporter

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mira-project/mira/ipfix"
)

// Transport carries complete IPFIX messages. Begin is called before each
// message is built; the number it returns identifies the transport
// session (connection, file) and must change whenever a new one starts,
// because templates must then be sent again.
type Transport interface {
	Begin() (session uint64, err error)
	Write(msg []byte) error
	// Reliable is true for stream transports, which need no template
	// refresh and may carry larger messages.
	Reliable() bool
	Flush() error
	Close() error
}

// Reconnector is a Transport that can start a new session after a failed
// Write; it returns the new session number.
type Reconnector interface {
	Reconnect() (session uint64, err error)
}

type udpTransport struct {
	c    *net.UDPConn
	peer *peerQueue // reads a local collector's receive queue (nil: not yet)
}

// DialUDP returns a UDP transport to addr.
func DialUDP(addr string) (Transport, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	c, err := net.DialUDP("udp", nil, ua)
	if err != nil {
		return nil, err
	}
	return &udpTransport{c: c}, nil
}

func (t *udpTransport) Begin() (uint64, error) { return 1, nil }
func (t *udpTransport) Write(m []byte) error {
	_, err := t.c.Write(m)
	return err
}
func (t *udpTransport) Reliable() bool { return false }
func (t *udpTransport) Flush() error   { return nil }
func (t *udpTransport) Close() error {
	t.closePeer()
	return t.c.Close()
}

type tcpTransport struct {
	addr    string
	tls     *tls.Config // nil: plain TCP
	c       net.Conn
	raw     *countConn // the TCP connection under c
	session uint64
	// acked: the collector confirmed it stored the stream before
	// closing its end (Close; collector.StoredAck).
	acked bool
	// dialing is the connection attempt under way (nil: none): it goes
	// on in the background past wait, and a later Reconnect takes
	// its result.
	dialing chan dialResult
	// wait bounds how long Reconnect waits for the attempt (0: the
	// whole attempt; Config.ConnectWait).
	wait time.Duration
}

type dialResult struct {
	c   net.Conn
	raw *countConn
	err error
}

// LiveConnectWait is the Config.ConnectWait of a live probe: an
// unreachable collector (SYNs dropped) takes up to dialTimeout, which
// a live probe's flow export, and its capture with it, must not wait for.
const LiveConnectWait = 200 * time.Millisecond

// errConnecting fails a Reconnect whose connection attempt is still
// under way.
var errConnecting = errors.New("connecting to the collector")

// countConn counts the bytes written to a TCP connection (under TLS:
// the records), so that the kernel's unacknowledged count says how much
// of the stream the collector's host has received.
type countConn struct {
	net.Conn
	n uint64
}

func (c *countConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.n += uint64(n)
	return n, err
}

// CloseWrite half-closes the TCP connection (Close and closeConfirm
// rely on it).
func (c *countConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.New("connection cannot half-close")
}

// streamPos returns the bytes written on the current connection and how
// many of them the collector's host has acknowledged (ok false when the
// kernel cannot say).
func (t *tcpTransport) streamPos() (written, acked uint64, ok bool) {
	if t.raw == nil {
		return 0, 0, false
	}
	q, err := unacked(t.raw.Conn)
	if err != nil || uint64(q) > t.raw.n {
		return t.raw.n, 0, false
	}
	return t.raw.n, t.raw.n - uint64(q), true
}

// NewTCP returns a TCP transport to addr; it connects on first use and
// reconnects after failures.
func NewTCP(addr string) (Transport, error) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, err
	}
	return &tcpTransport{addr: addr}, nil
}

// NewTLS returns a transport to addr over TLS (RFC 7011 §10.4.2; IANA's
// IPFIX-over-TLS port is 4740) with cfg (nil: the system's roots); the
// collector's certificate must name the host of addr unless
// cfg.ServerName says otherwise. Like TCP it connects on first use and
// reconnects after failures.
func NewTLS(addr string, cfg *tls.Config) (Transport, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg != nil {
		c = cfg.Clone()
	}
	if c.ServerName == "" {
		c.ServerName = host
	}
	return &tcpTransport{addr: addr, tls: c}, nil
}

func (t *tcpTransport) Begin() (uint64, error) {
	if t.c == nil {
		if _, err := t.Reconnect(); err != nil {
			return t.session, err
		}
	}
	return t.session, nil
}

func (t *tcpTransport) Reconnect() (uint64, error) {
	if t.c != nil {
		t.c.Close()
		t.c = nil
	}
	t.raw = nil
	if t.dialing == nil {
		ch := make(chan dialResult, 1)
		t.dialing = ch
		go func() { ch <- t.dial() }()
	}
	var r dialResult
	if t.wait <= 0 {
		r = <-t.dialing
	} else {
		select {
		case r = <-t.dialing:
		case <-time.After(t.wait):
			return t.session, fmt.Errorf("%w %s (up to %v)", errConnecting, t.addr, dialTimeout)
		}
	}
	t.dialing = nil
	if r.err != nil {
		return t.session, r.err
	}
	t.c, t.raw = r.c, r.raw
	t.session++
	return t.session, nil
}

// dial connects (and makes the TLS handshake) within dialTimeout; it
// only reads t's configuration, so it runs in the background.
func (t *tcpTransport) dial() dialResult {
	d := &net.Dialer{Timeout: dialTimeout}
	raw, err := d.Dial("tcp", t.addr)
	if err != nil {
		return dialResult{err: err}
	}
	cc := &countConn{Conn: raw}
	var c net.Conn = cc
	if t.tls != nil {
		tc := tls.Client(cc, t.tls)
		ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
		err = tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			raw.Close()
			return dialResult{err: err}
		}
		c = tc
	}
	return dialResult{c: c, raw: cc}
}

func (t *tcpTransport) Write(m []byte) error {
	if t.c == nil {
		return errors.New("tcp transport: not connected")
	}
	if _, err := t.c.Write(m); err != nil {
		if t.tls != nil {
			err = t.tlsRefusal(t.c, err)
		}
		t.c.Close()
		t.c = nil
		return err
	}
	return nil
}

// alertWait bounds the read for a TLS collector's alert after a failed
// write; the read returns at once when the connection is closed.
const alertWait = time.Second

// tlsRefusal explains a failed write on a TLS connection by what the
// collector sent before closing it. A TLS 1.3 collector verifies the
// exporter's certificate only after the exporter's handshake has
// completed, so its refusal ("certificate required") is an alert that
// the exporter sees only by reading; a write meanwhile fails with a bare
// "broken pipe" or "connection reset by peer".
func (t *tcpTransport) tlsRefusal(c net.Conn, werr error) error {
	c.SetReadDeadline(time.Now().Add(alertWait))
	_, rerr := c.Read(make([]byte, 1))
	var oe *net.OpError
	if !errors.As(rerr, &oe) || oe.Op != "remote error" {
		return werr
	}
	return t.refused(rerr)
}

// refused wraps a TLS alert from the collector (a *net.OpError with Op
// "remote error"), saying why no client certificate was sent when the
// collector wanted one.
func (t *tcpTransport) refused(alert error) error {
	var re *refusedError
	if errors.As(alert, &re) {
		return alert // explained already
	}
	var oe *net.OpError
	required := errors.As(alert, &oe) && oe.Err != nil && strings.HasSuffix(oe.Err.Error(), "certificate required")
	e := &refusedError{addr: t.addr, alert: alert}
	switch {
	case required && len(t.tls.Certificates) == 0 && t.tls.GetClientCertificate == nil:
		e.why = "no client certificate is configured: set the export's tls cert and key"
	case required:
		// crypto/tls sends no certificate when none is signed by a CA
		// the collector's request names.
		e.why = "the configured client certificate is not signed by a CA the collector accepts"
	}
	return e
}

// refusedError is a TLS collector's refusal: its alert, and why when it
// is known.
type refusedError struct {
	addr  string
	alert error
	why   string
}

func (e *refusedError) Error() string {
	if e.why == "" {
		return fmt.Sprintf("collector %s refused the TLS connection: %v", e.addr, e.alert)
	}
	return fmt.Sprintf("collector %s refused the TLS connection: %v (%s)", e.addr, e.alert, e.why)
}

func (e *refusedError) Unwrap() error { return e.alert }

func (t *tcpTransport) Reliable() bool { return true }
func (t *tcpTransport) Flush() error   { return nil }

// dialTimeout bounds a connection attempt, TLS handshake included.
const dialTimeout = 5 * time.Second

// closeWait bounds how long Close waits for the collector to finish
// reading.
const closeWait = 5 * time.Second

// Close half-closes the connection and waits for the collector to close
// its end once it has read everything: then the stream is known to have
// been consumed, and a refusal that arrives late surfaces here (a TLS 1.3
// collector rejects a client certificate only after the client has
// finished its handshake, as an alert the exporter reads). A collector
// that keeps the connection open past closeWait is not an error.
func (t *tcpTransport) Close() error {
	if ch := t.dialing; ch != nil {
		// A connection still being made is not used: closed when made.
		t.dialing = nil
		go func() {
			if r := <-ch; r.c != nil {
				r.c.Close()
			}
		}()
	}
	c := t.c
	if c == nil {
		return nil
	}
	t.c = nil
	t.acked = false
	var err error
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		if err = cw.CloseWrite(); err == nil {
			c.SetReadDeadline(time.Now().Add(closeWait))
			var h headWriter
			if _, err = io.Copy(&h, c); errors.Is(err, os.ErrDeadlineExceeded) {
				err = nil
			}
			t.acked = err == nil && storedAck(h.b, h.n)
		} else if t.tls != nil {
			err = t.tlsRefusal(c, err)
		}
	}
	if cerr := c.Close(); err == nil {
		err = cerr
	}
	var oe *net.OpError
	if t.tls != nil && errors.As(err, &oe) && oe.Op == "remote error" {
		err = t.refused(err)
	}
	return err
}

// closeConfirm half-closes the connection and says whether the collector
// then closed its side, which it does once it has read (and, MIRA's
// collector, stored) everything: the spool's proof of delivery.
func (t *tcpTransport) closeConfirm() (bool, error) {
	c := t.c
	if c == nil {
		return false, errors.New("not connected")
	}
	t.c = nil
	defer c.Close()
	cw, ok := c.(interface{ CloseWrite() error })
	if !ok {
		return false, errors.New("connection cannot half-close")
	}
	if err := cw.CloseWrite(); err != nil {
		return false, err
	}
	c.SetReadDeadline(time.Now().Add(closeWait))
	b, err := io.ReadAll(c)
	if err != nil {
		return false, err
	}
	if !storedAck(b, len(b)) {
		return false, errors.New("the collector closed without confirming it stored the stream")
	}
	return true, nil
}

// storedAck says whether b, the first bytes of the n a collector sent
// before closing, is its proof of storage (collector.StoredAck): an IPFIX
// header with no sets. A plain close is not one: a collector killed
// after reading everything closes the same way.
func storedAck(b []byte, n int) bool {
	h, ok := ipfix.ParseHeader(b)
	return ok && h.Length == ipfix.HeaderLen && n == ipfix.HeaderLen
}

// headWriter keeps the first ipfix.HeaderLen bytes written to it and
// counts them all.
type headWriter struct {
	b []byte
	n int
}

func (w *headWriter) Write(p []byte) (int, error) {
	if k := ipfix.HeaderLen - len(w.b); k > 0 {
		w.b = append(w.b, p[:min(k, len(p))]...)
	}
	w.n += len(p)
	return len(p), nil
}

type writerTransport struct{ w io.Writer }

func (t *writerTransport) Begin() (uint64, error) { return 1, nil }
func (t *writerTransport) Write(m []byte) error {
	_, err := t.w.Write(m)
	return err
}
func (t *writerTransport) Reliable() bool { return true }
func (t *writerTransport) Flush() error {
	if f, ok := t.w.(interface{ Flush() error }); ok {
		return f.Flush()
	}
	return nil
}
func (t *writerTransport) Close() error { return nil }

// fileTransport writes RFC 5655 IPFIX files named mira-YYYYMMDDhhmmss.ipfix
// (UTC start time) in dir, starting a new file every rotate.
type fileTransport struct {
	dir     string
	rotate  time.Duration
	now     func() time.Time
	f       *os.File
	w       *bufio.Writer
	next    time.Time
	session uint64
}

// NewFile returns a file transport writing into dir, which must exist.
func NewFile(dir string, rotate time.Duration, now func() time.Time) (Transport, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%s: not a directory", dir)
	}
	if now == nil {
		now = time.Now
	}
	return &fileTransport{dir: dir, rotate: rotate, now: now}, nil
}

func (t *fileTransport) Begin() (uint64, error) {
	now := t.now()
	if t.f != nil && now.Before(t.next) {
		return t.session, nil
	}
	if err := t.closeFile(); err != nil {
		return t.session, err
	}
	base := "mira-" + now.UTC().Format("20060102150405")
	name := filepath.Join(t.dir, base+".ipfix")
	var f *os.File
	var err error
	for i := 1; ; i++ {
		f, err = os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if !errors.Is(err, os.ErrExist) || i > 100 {
			break
		}
		name = filepath.Join(t.dir, fmt.Sprintf("%s-%d.ipfix", base, i))
	}
	if err != nil {
		return t.session, err
	}
	t.f, t.w = f, bufio.NewWriterSize(f, 64<<10)
	t.next = now.Truncate(t.rotate).Add(t.rotate)
	t.session++
	return t.session, nil
}

func (t *fileTransport) Write(m []byte) error {
	if t.w == nil {
		return errors.New("file transport: no file open")
	}
	_, err := t.w.Write(m)
	return err
}

func (t *fileTransport) Reliable() bool { return true }

func (t *fileTransport) Flush() error {
	if t.w == nil {
		return nil
	}
	return t.w.Flush()
}

func (t *fileTransport) closeFile() error {
	if t.f == nil {
		return nil
	}
	err := t.w.Flush()
	if cerr := t.f.Close(); err == nil {
		err = cerr
	}
	t.f, t.w = nil, nil
	return err
}

func (t *fileTransport) Close() error { return t.closeFile() }
