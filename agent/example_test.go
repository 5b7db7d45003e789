package agent_test

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

	"github.com/mira-project/mira/agent"
)

// counters stands for the pipeline's atomics.
type counters struct {
	packets, octets atomic.Uint64
}

func Example() {
	var c counters
	provider := agent.ProviderFunc(func(s *agent.Snapshot) {
		s.Name = "probe-a"
		s.Version = "1.0"
		s.Interfaces = append(s.Interfaces[:0], agent.CaptureInterface{
			Name: "eth1", IfIndex: 3, LinkType: 1,
			Packets: c.packets.Load(), Octets: c.octets.Load(),
		})
	})
	cfg, err := agent.ParseConfig("probe.yaml", []byte(`
communities:
  - name: public
    sources: [192.0.2.0/24]
users:
  - name: ops
    auth: SHA-256
    auth_password: change-me-auth
    priv: AES
    priv_password: change-me-priv
state_file: /var/lib/mira/snmp.state
`))
	if err != nil {
		slog.Error("config", "err", err)
		return
	}
	a, err := agent.New(cfg, provider, slog.Default())
	if err != nil {
		slog.Error("snmp", "err", err)
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := a.Serve(ctx, "0.0.0.0:161"); err != nil {
		slog.Error("snmp", "err", err)
	}
}
