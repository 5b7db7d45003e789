package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/mira-project/mira/mib"
)

// target is a configured notification receiver.
type target struct {
	cfg  Target
	host string
	port uint16
	user *usmUser
	pw   User
}

func (a *Agent) newTarget(t Target) (*target, error) {
	host, portStr, err := net.SplitHostPort(t.Address)
	if err != nil {
		host, portStr = t.Address, "162"
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("snmp notification target %q: bad port: %w", t.Address, err)
	}
	tg := &target{cfg: t, host: host, port: uint16(port)}
	if t.Version == "v3" || t.Version == "3" {
		for _, u := range a.cfg.Users {
			if u.Name == t.User {
				tg.pw = u
			}
		}
		tg.user = a.users[t.User]
		if tg.user == nil {
			return nil, fmt.Errorf("snmp notification target %q: unknown user %q", t.Address, t.User)
		}
	}
	if tg.cfg.Timeout == 0 {
		tg.cfg.Timeout = time.Second
	}
	if tg.cfg.Retries == 0 {
		tg.cfg.Retries = 2
	}
	return tg, nil
}

// send delivers one notification to the target.
func (a *Agent) send(ctx context.Context, t *target, vars []gosnmp.SnmpPDU) error {
	g := &gosnmp.GoSNMP{
		Target:    t.host,
		Port:      t.port,
		Transport: "udp",
		Version:   gosnmp.Version2c,
		Community: t.cfg.Community,
		Timeout:   t.cfg.Timeout,
		Retries:   t.cfg.Retries,
		MaxOids:   gosnmp.MaxOids,
		Context:   ctx,
	}
	if t.user != nil {
		g.Version = gosnmp.Version3
		g.SecurityModel = gosnmp.UserSecurityModel
		sp := &gosnmp.UsmSecurityParameters{
			UserName:                 t.user.name,
			AuthenticationProtocol:   t.user.auth.gosnmp,
			AuthenticationPassphrase: t.pw.AuthPassword,
			PrivacyProtocol:          gosnmp.NoPriv,
		}
		g.MsgFlags = gosnmp.AuthNoPriv
		if t.user.priv {
			g.MsgFlags = gosnmp.AuthPriv
			sp.PrivacyProtocol = gosnmp.AES
			sp.PrivacyPassphrase = t.pw.PrivPassword
		}
		if !t.cfg.Inform {
			// For traps we are the authoritative engine (RFC 3414 1.5.1):
			// keys are localized to our engine ID and carry our boots
			// and time. Informs discover the receiver's engine instead.
			boots, etime := a.engine.bootsTime()
			sp.AuthoritativeEngineID = a.engine.idStr
			sp.AuthoritativeEngineBoots = boots
			sp.AuthoritativeEngineTime = etime
			sp.SecretKey = t.user.authKey
			sp.PrivacyKey = t.user.privKey
		}
		g.SecurityParameters = sp
	}
	if err := g.Connect(); err != nil {
		return err
	}
	defer g.Conn.Close()
	_, err := g.SendTrap(gosnmp.SnmpTrap{Variables: vars, IsInform: t.cfg.Inform})
	return err
}

// notify sends a notification to every target.
func (a *Agent) notify(ctx context.Context, trapOID string, objs []gosnmp.SnmpPDU) error {
	vars := make([]gosnmp.SnmpPDU, 0, 2+len(objs))
	vars = append(vars,
		gosnmp.SnmpPDU{Name: ".1.3.6.1.2.1.1.3.0", Type: gosnmp.TimeTicks, Value: a.uptime()},
		gosnmp.SnmpPDU{Name: oidString(oidSnmpTrapOID) + ".0", Type: gosnmp.ObjectIdentifier, Value: "." + trapOID},
	)
	vars = append(vars, objs...)
	var errs []error
	for _, t := range a.targets {
		if err := a.send(ctx, t, vars); err != nil {
			a.stats.NotificationErrors.Add(1)
			a.log.Warn("snmp notification failed", "target", t.cfg.Address, "err", err)
			errs = append(errs, fmt.Errorf("snmp notification to %s: %w", t.cfg.Address, err))
			continue
		}
		a.stats.NotificationsSent.Add(1)
	}
	return errors.Join(errs...)
}

// eventState is what the watcher remembers between polls.
type eventState struct {
	started  bool
	sampling bool
	lost     []bool
	snap     Snapshot
}

// watch polls the provider and sends notifications on state changes.
func (a *Agent) watch(ctx context.Context) {
	every := a.cfg.PollInterval
	if every == 0 {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	var st eventState
	for {
		a.pollEvents(ctx, &st)
		select {
		case <-ctx.Done():
			// One last poll as the agent stops: a state entered since
			// the last tick (an overload in a replay's last interval,
			// an exporter spooling at shutdown) is still announced.
			// Its sends may outlive ctx, for finalPollWait at most.
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalPollWait)
			a.pollEvents(fctx, &st)
			cancel()
			return
		case <-t.C:
		}
	}
}

// finalPollWait bounds the notifications of the poll made as the agent
// stops (an inform to a receiver that does not answer).
const finalPollWait = 2 * time.Second

func (a *Agent) pollEvents(ctx context.Context, st *eventState) {
	a.mu.Lock()
	a.prov.Snapshot(&st.snap)
	a.mu.Unlock()
	s := &st.snap
	sampling := s.Pipeline.RegulationState == RegulationSampling
	if sampling != st.sampling || (!st.started && sampling) {
		rate := s.Pipeline.SamplingRate
		if rate == 0 {
			rate = 1
		}
		state := RegulationNormal
		trap := mib.MiraOverloadLeft
		if sampling {
			state = RegulationSampling
			trap = mib.MiraOverloadEntered
		}
		_ = a.notify(ctx, trap, []gosnmp.SnmpPDU{
			{Name: "." + mib.MiraRegulationState + ".0", Type: gosnmp.Integer, Value: state},
			{Name: "." + mib.MiraSamplingRate + ".0", Type: gosnmp.Gauge32, Value: uint(rate)},
		})
	}
	st.sampling = sampling
	for len(st.lost) < len(s.Exporters) {
		st.lost = append(st.lost, false)
	}
	for i := range s.Exporters {
		e := &s.Exporters[i]
		var trap string
		switch {
		case e.State == ExporterSpooling && !st.lost[i]:
			st.lost[i] = true
			trap = mib.MiraCollectorLost
		case e.State == ExporterConnected && st.lost[i]:
			st.lost[i] = false
			trap = mib.MiraCollectorRegained
		default:
			continue
		}
		idx := "." + strconv.Itoa(i+1)
		_ = a.notify(ctx, trap, []gosnmp.SnmpPDU{
			{Name: "." + mib.MiraExpAddress + idx, Type: gosnmp.OctetString, Value: e.Address},
			{Name: "." + mib.MiraExpState + idx, Type: gosnmp.Integer, Value: e.State},
			{Name: "." + mib.MiraExpLastError + idx, Type: gosnmp.OctetString, Value: e.LastError},
			{Name: "." + mib.MiraExpSpoolDepth + idx, Type: gosnmp.Gauge32, Value: uint(e.SpoolDepth)},
		})
	}
	st.started = true
}
