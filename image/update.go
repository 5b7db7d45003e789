package image

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/filesystem"
)

// An update carries the root file system of slot A and its kernel from a
// built image (the payload); the probe writes them to its inactive slot.
// The update protocol (mira-init serves it when mira/system.yaml has
// update.listen and update.token):
//
//	GET /update/status   -> Status
//	PUT /update          body: root || kernel; headers X-Mira-Root-Size,
//	                     X-Mira-Kernel-Size, X-Mira-Sha256 (hex, of the body),
//	                     X-Mira-Signature (base64 ed25519 over the SHA-256 digest;
//	                     required when the probe's image was built with --sign)
//
// both with "Authorization: Bearer TOKEN". After a PUT the probe reboots
// into the new slot once; it commits the slot only when mira-probe comes
// up healthy, otherwise the next boot is the old slot again.

// Payload is what an update writes.
type Payload struct {
	Root, Kernel []byte
}

// Digest is the SHA-256 of root || kernel, which a signature covers.
func (p *Payload) Digest() [32]byte {
	h := sha256.New()
	h.Write(p.Root)
	h.Write(p.Kernel)
	var d [32]byte
	h.Sum(d[:0])
	return d
}

// ReadPayload extracts the payload from a built image: slot A's squashfs
// (trimmed to its bytes_used, rounded up to 4 KiB) and /vmlinuz-a.
func ReadPayload(img string) (*Payload, error) {
	d, err := diskfs.Open(img, diskfs.WithOpenMode(diskfs.ReadOnly))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", img, err)
	}
	defer d.Close()
	var root bytes.Buffer
	if _, err := d.ReadPartitionContents(2, &root); err != nil {
		return nil, fmt.Errorf("%s: slot A: %w", img, err)
	}
	r := root.Bytes()
	if len(r) < 96 || string(r[:4]) != "hsqs" {
		return nil, fmt.Errorf("%s: slot A holds no squashfs", img)
	}
	used := binary.LittleEndian.Uint64(r[40:])
	used = (used + 4095) &^ 4095
	if used > uint64(len(r)) {
		return nil, fmt.Errorf("%s: slot A: squashfs bytes_used %d beyond the partition", img, used)
	}
	fs, err := d.GetFilesystem(1)
	if err != nil {
		return nil, fmt.Errorf("%s: boot partition: %w", img, err)
	}
	k, err := readAll(fs, "/vmlinuz-a")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", img, err)
	}
	return &Payload{Root: r[:used], Kernel: k}, nil
}

func readAll(fs filesystem.FileSystem, name string) ([]byte, error) {
	f, err := fs.OpenFile(name, os.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// LoadSigningKey reads an ed25519 private key (PEM, PKCS #8: `openssl
// genpkey -algorithm ed25519`).
func LoadSigningKey(name string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s: no PEM block", name)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: not an ed25519 key", name)
	}
	return ek, nil
}

// PublicKeyPEM encodes the public half for mira/update.pub.
func PublicKeyPEM(k ed25519.PrivateKey) []byte {
	der, _ := x509.MarshalPKIXPublicKey(k.Public())
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// ParsePublicKeyPEM decodes mira/update.pub.
func ParsePublicKeyPEM(b []byte) (ed25519.PublicKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("update.pub: no PEM block")
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("update.pub: %w", err)
	}
	pk, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, errors.New("update.pub: not an ed25519 key")
	}
	return pk, nil
}

// Status is GET /update/status.
type Status struct {
	Slot    string `json:"slot"`    // the slot running now
	Trial   bool   `json:"trial"`   // running an uncommitted slot
	Active  string `json:"active"`  // the committed slot
	Version string `json:"version"` // of the running slot
	Message string `json:"message"` // the last update's outcome
	BootID  string `json:"boot_id"` // changes at every boot
}

// Client talks to a probe's update endpoint.
type Client struct {
	URL   string // https://probe:port (http:// when the probe has no TLS keys)
	Token string
	HTTP  *http.Client
}

// NewClient returns a client; ca, when set, is a PEM file of the CA (or
// self-signed certificate) the probe's TLS certificate must chain to.
func NewClient(url, token, ca string) (*Client, error) {
	tr := &http.Transport{}
	if ca != "" {
		b, err := os.ReadFile(ca)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("%s: no certificate", ca)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	return &Client{URL: strings.TrimRight(url, "/"), Token: token, HTTP: &http.Client{Transport: tr, Timeout: 5 * time.Minute}}, nil
}

func (c *Client) do(ctx context.Context, method, path string, body []byte, hdr map[string]string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.URL+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return b, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(b)))
	}
	return b, nil
}

// Status asks the probe what it runs.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	b, err := c.do(ctx, http.MethodGet, "/update/status", nil, nil)
	if err != nil {
		return nil, err
	}
	var s Status
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("/update/status: %w", err)
	}
	return &s, nil
}

// Send uploads the payload (with sig, when not nil); the probe verifies
// it, writes its inactive slot and reboots into it once.
func (c *Client) Send(ctx context.Context, p *Payload, sig []byte) error {
	d := p.Digest()
	hdr := map[string]string{
		"X-Mira-Root-Size":   strconv.Itoa(len(p.Root)),
		"X-Mira-Kernel-Size": strconv.Itoa(len(p.Kernel)),
		"X-Mira-Sha256":      fmt.Sprintf("%x", d),
	}
	if sig != nil {
		hdr["X-Mira-Signature"] = base64.StdEncoding.EncodeToString(sig)
	}
	body := make([]byte, 0, len(p.Root)+len(p.Kernel))
	body = append(append(body, p.Root...), p.Kernel...)
	_, err := c.do(ctx, http.MethodPut, "/update", body, hdr)
	return err
}

// WaitBoot polls the probe until it has booted again (its boot ID is no
// longer prevBoot) and has decided on the trial slot: it reports whether
// it runs slot committed, or ctx ends.
func (c *Client) WaitBoot(ctx context.Context, prevBoot, slot string) (bool, *Status, error) {
	for {
		s, err := c.Status(ctx)
		if err == nil && s.BootID != prevBoot && !s.Trial {
			return s.Slot == slot && s.Active == slot, s, nil
		}
		select {
		case <-ctx.Done():
			return false, s, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}
