package cluster

import (
	"fmt"
	"net"
	"strconv"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// Embedded starts an in-process NATS server with JetStream (`--nats
// embedded`): a one-box install that other nodes can join later at the
// returned URL. listen is host:port (port 0: a free port); dir keeps
// JetStream's files.
func Embedded(listen, dir string) (*natsserver.Server, string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, "", fmt.Errorf("cluster: embedded NATS address %q: %w", listen, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return nil, "", fmt.Errorf("cluster: embedded NATS port %q: %w", port, err)
	}
	if p == 0 {
		p = natsserver.RANDOM_PORT
	}
	ns, err := natsserver.NewServer(&natsserver.Options{Host: host, Port: p, JetStream: true, StoreDir: dir,
		NoSigs: true, MaxPayload: 1 << 20})
	if err != nil {
		return nil, "", fmt.Errorf("cluster: embedded NATS: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, "", fmt.Errorf("cluster: embedded NATS on %s not ready within 10s", listen)
	}
	return ns, ns.ClientURL(), nil
}
