package agent

import (
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	_ "crypto/sha1" // registers crypto.SHA1
	_ "crypto/sha256"
	_ "crypto/sha512"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gosnmp/gosnmp"
)

type authProto struct {
	hash    crypto.Hash
	macLen  int
	gosnmp  gosnmp.SnmpV3AuthProtocol
	display string
}

var authProtocols = map[string]authProto{
	"SHA":     {crypto.SHA1, 12, gosnmp.SHA, "SHA"},
	"SHA1":    {crypto.SHA1, 12, gosnmp.SHA, "SHA"},
	"SHA-1":   {crypto.SHA1, 12, gosnmp.SHA, "SHA"},
	"SHA-224": {crypto.SHA224, 16, gosnmp.SHA224, "SHA-224"},
	"SHA224":  {crypto.SHA224, 16, gosnmp.SHA224, "SHA-224"},
	"SHA-256": {crypto.SHA256, 24, gosnmp.SHA256, "SHA-256"},
	"SHA256":  {crypto.SHA256, 24, gosnmp.SHA256, "SHA-256"},
	"SHA-384": {crypto.SHA384, 32, gosnmp.SHA384, "SHA-384"},
	"SHA384":  {crypto.SHA384, 32, gosnmp.SHA384, "SHA-384"},
	"SHA-512": {crypto.SHA512, 48, gosnmp.SHA512, "SHA-512"},
	"SHA512":  {crypto.SHA512, 48, gosnmp.SHA512, "SHA-512"},
}

// Security levels (msgFlags & 3).
const (
	levelNoAuth   = 0
	levelAuth     = 1
	levelAuthPriv = 3
)

// usmUser is a configured user with keys localized to our engine ID.
type usmUser struct {
	name    string
	auth    authProto
	priv    bool
	authKey []byte
	privKey []byte
	level   byte // the configured (minimum and maximum) level
	// decoders per request level, with keys preset so gosnmp never
	// re-derives them.
	dec [4]*gosnmp.GoSNMP
}

// passwordToKey implements RFC 3414 A.2 (and RFC 7860 for SHA-2): hash
// 1 MiB of the repeated password, then localize to the engine ID.
func passwordToKey(h crypto.Hash, password string, engineID []byte) []byte {
	d := h.New()
	var buf [64]byte
	pw := []byte(password)
	j := 0
	for n := 0; n < 1<<20; n += len(buf) {
		for i := range buf {
			buf[i] = pw[j]
			j++
			if j == len(pw) {
				j = 0
			}
		}
		d.Write(buf[:])
	}
	ku := d.Sum(nil)
	d.Reset()
	d.Write(ku)
	d.Write(engineID)
	d.Write(ku)
	return d.Sum(nil)
}

func newUSMUser(u User, engineID []byte) (*usmUser, error) {
	ap, ok := authProtocols[strings.ToUpper(u.Auth)]
	if !ok {
		return nil, fmt.Errorf("user %q: unknown auth protocol %q", u.Name, u.Auth)
	}
	uu := &usmUser{name: u.Name, auth: ap, level: levelAuth}
	uu.authKey = passwordToKey(ap.hash, u.AuthPassword, engineID)
	if u.Priv != "" {
		uu.priv = true
		uu.level = levelAuthPriv
		// RFC 3826: the AES-128 key is the first 16 octets of the
		// password localized with the auth protocol's hash.
		uu.privKey = passwordToKey(ap.hash, u.PrivPassword, engineID)[:16]
	}
	for _, lvl := range []byte{levelNoAuth, levelAuth, levelAuthPriv} {
		if lvl > uu.level {
			continue
		}
		sp := &gosnmp.UsmSecurityParameters{
			UserName:               u.Name,
			AuthoritativeEngineID:  string(engineID),
			AuthenticationProtocol: gosnmp.NoAuth,
			PrivacyProtocol:        gosnmp.NoPriv,
		}
		if lvl >= levelAuth {
			sp.AuthenticationProtocol = ap.gosnmp
			sp.AuthenticationPassphrase = u.AuthPassword
			sp.SecretKey = uu.authKey
		}
		if lvl == levelAuthPriv {
			sp.PrivacyProtocol = gosnmp.AES
			sp.PrivacyPassphrase = u.PrivPassword
			sp.PrivacyKey = uu.privKey
		}
		uu.dec[lvl] = &gosnmp.GoSNMP{
			Version:            gosnmp.Version3,
			SecurityModel:      gosnmp.UserSecurityModel,
			MsgFlags:           gosnmp.SnmpV3MsgFlags(lvl),
			SecurityParameters: sp,
		}
	}
	return uu, nil
}

// checkDigest verifies msgAuthenticationParameters (RFC 3414 6.3.2,
// RFC 7860 4.2.2). msg is modified and restored.
func (u *usmUser) checkDigest(msg []byte, h *msgHeader) bool {
	if h.authEnd-h.authStart != u.auth.macLen {
		return false
	}
	var got [64]byte
	copy(got[:], msg[h.authStart:h.authEnd])
	for i := h.authStart; i < h.authEnd; i++ {
		msg[i] = 0
	}
	m := hmac.New(u.auth.hash.New, u.authKey)
	m.Write(msg[:h.msgEnd])
	sum := m.Sum(nil)
	copy(msg[h.authStart:h.authEnd], got[:u.auth.macLen])
	return subtle.ConstantTimeCompare(sum[:u.auth.macLen], got[:u.auth.macLen]) == 1
}

// engine is the local SNMP engine: its ID, boots and time.
type engine struct {
	id    []byte
	idStr string
	mu    sync.Mutex
	boots uint32
	start time.Time // when engine time was 0
}

const timeWindow = 150 // seconds, RFC 3414 2.2.3

func (e *engine) bootsTime() (uint32, uint32) {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := time.Since(e.start) / time.Second
	if t >= 0x7fffffff {
		// RFC 3414 2.2.2: engine time wraps to zero and boots
		// increments. Not persisted here; the next start will.
		e.boots++
		e.start = e.start.Add(t * time.Second)
		t = 0
	}
	return e.boots, uint32(t)
}

// inTimeWindow checks RFC 3414 3.2 step 7b for the authoritative engine.
func (e *engine) inTimeWindow(boots, etime int64) bool {
	ob, ot := e.bootsTime()
	if boots != int64(ob) || ob == 0x7fffffff {
		return false
	}
	d := etime - int64(ot)
	return d <= timeWindow && d >= -timeWindow
}

// loadEngine sets up the engine ID and boots from the configuration and
// the state file, writing the state file back with boots incremented.
func loadEngine(cfgID, stateFile string) (*engine, error) {
	var id []byte
	if cfgID != "" {
		b, err := hex.DecodeString(strings.TrimPrefix(strings.ToLower(cfgID), "0x"))
		if err != nil {
			return nil, fmt.Errorf("snmp engine id: %w", err)
		}
		id = b
	}
	var boots uint32
	if stateFile != "" {
		sid, sboots, err := readState(stateFile)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return nil, err
		default:
			if id == nil || string(id) == string(sid) {
				id = sid
				boots = sboots
			}
		}
	}
	if id == nil {
		id = make([]byte, 13)
		// RFC 3411 snmpEngineID format: enterprise 32473 with the high
		// bit set, format 5 (octets), 8 random octets.
		copy(id, []byte{0x80, 0x00, 0x7e, 0xd9, 0x05})
		if _, err := rand.Read(id[5:]); err != nil {
			return nil, fmt.Errorf("snmp engine id: %w", err)
		}
	}
	if boots < 0x7fffffff {
		boots++
	}
	if stateFile != "" {
		if err := writeState(stateFile, id, boots); err != nil {
			return nil, err
		}
	}
	return &engine{id: id, idStr: string(id), boots: boots, start: time.Now()}, nil
}

func readState(path string) ([]byte, uint32, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, fmt.Errorf("snmp state %s: %w", path, err)
	}
	var id []byte
	var boots uint32
	haveBoots := false
	for n, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if len(f) != 2 {
			return nil, 0, fmt.Errorf("snmp state %s:%d: want \"key value\"", path, n+1)
		}
		switch f[0] {
		case "engine-id":
			v, err := hex.DecodeString(f[1])
			if err != nil || len(v) < 5 || len(v) > 32 {
				return nil, 0, fmt.Errorf("snmp state %s:%d: bad engine-id", path, n+1)
			}
			id = v
		case "boots":
			v, err := strconv.ParseUint(f[1], 10, 31)
			if err != nil {
				return nil, 0, fmt.Errorf("snmp state %s:%d: bad boots: %w", path, n+1, err)
			}
			boots = uint32(v)
			haveBoots = true
		default:
			return nil, 0, fmt.Errorf("snmp state %s:%d: unknown key %q", path, n+1, f[0])
		}
	}
	if id == nil || !haveBoots {
		return nil, 0, fmt.Errorf("snmp state %s: engine-id or boots missing", path)
	}
	return id, boots, nil
}

// writeState replaces the state file atomically, so a crash mid-write
// cannot reset boots (which would reopen the replay window).
func writeState(path string, id []byte, boots uint32) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".snmp-state-*")
	if err != nil {
		return fmt.Errorf("snmp state %s: %w", path, err)
	}
	_, err = fmt.Fprintf(f, "# MIRA SNMP engine state; boots increments at each start\nengine-id %s\nboots %d\n", hex.EncodeToString(id), boots)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("snmp state %s: %w", path, err)
	}
	return nil
}
