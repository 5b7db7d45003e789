package image

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/mira-project/mira/appliance/config"
	collectorconfig "github.com/mira-project/mira/collector/config"
)

// ProbeConfig checks a user's probe.yaml (errors name name:line) and
// returns the configuration mira-init gives mira-probe: the same
// document with snmp.state_file set to stateFile unless the user set one,
// so snmpEngineBoots and the engine ID survive reboots on the data
// partition, and a spool for every tcp:// and tls:// export that has
// none, in spool/N beside stateFile's directory (the data partition), so
// that a collector outage or a reboot loses no record.
func ProbeConfig(name string, user []byte, stateFile string) ([]byte, *config.Probe, error) {
	cfg, err := config.ParseProbe(name, user)
	if err != nil {
		return nil, nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(user, &doc); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	if doc.Kind == 0 { // empty file
		doc = yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{Kind: yaml.MappingNode, Tag: "!!map"}}}
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, nil, fmt.Errorf("%s:%d: the configuration is not a mapping", name, root.Line)
	}
	snmp := mapValue(root, "snmp")
	if snmp == nil || (snmp.Kind == yaml.ScalarNode && snmp.Tag == "!!null") {
		if snmp == nil {
			snmp = &yaml.Node{}
			root.Content = append(root.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "snmp"}, snmp)
		}
		snmp.Kind, snmp.Tag, snmp.Value = yaml.MappingNode, "!!map", ""
	}
	if snmp.Kind != yaml.MappingNode {
		return nil, nil, fmt.Errorf("%s:%d: snmp is not a mapping", name, snmp.Line)
	}
	if mapValue(snmp, "state_file") == nil {
		snmp.Style = 0 // block style: flow style cannot hold the new key cleanly
		snmp.Content = append(snmp.Content,
			&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "state_file"},
			&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: stateFile})
	}
	spoolDefaults(root, filepath.Join(filepath.Dir(filepath.Dir(stateFile)), "spool"))
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, nil, err
	}
	// The result must still be a valid probe configuration.
	if _, err := config.ParseProbe(name+" (with state_file)", buf.Bytes()); err != nil {
		return nil, nil, err
	}
	return buf.Bytes(), cfg, nil
}

func mapValue(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// spoolDefaults gives each tcp:// and tls:// entry of the export list
// without a spool one in dir/N (N its index).
func spoolDefaults(root *yaml.Node, dir string) {
	exp := mapValue(root, "export")
	if exp == nil || exp.Kind != yaml.SequenceNode {
		return
	}
	for i, e := range exp.Content {
		if e.Kind != yaml.MappingNode || mapValue(e, "spool") != nil {
			continue
		}
		u := mapValue(e, "url")
		if u == nil || !(strings.HasPrefix(u.Value, "tcp://") || strings.HasPrefix(u.Value, "tls://")) {
			continue
		}
		e.Style = 0
		e.Content = append(e.Content,
			&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "spool"},
			&yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{
				{Kind: yaml.ScalarNode, Tag: "!!str", Value: "dir"},
				{Kind: yaml.ScalarNode, Tag: "!!str", Value: filepath.Join(dir, strconv.Itoa(i))},
			}})
	}
}

// CollectorConfig checks mira/collector.yaml of an all-in-one box and
// returns the configuration mira-init gives mira-collector: the same
// document with retention.max_size set to three quarters of the data
// partition (dataBytes) unless the user set one, so that the store never
// fills the partition (the probe's spool and the logs live there too).
func CollectorConfig(name string, user []byte, dataBytes int64) ([]byte, error) {
	if _, err := collectorconfig.ParseCollector(name, user); err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(user, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if doc.Kind == 0 {
		doc = yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{Kind: yaml.MappingNode, Tag: "!!map"}}}
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d: the configuration is not a mapping", name, root.Line)
	}
	ret := mapValue(root, "retention")
	if ret == nil || (ret.Kind == yaml.ScalarNode && ret.Tag == "!!null") {
		if ret == nil {
			ret = &yaml.Node{}
			root.Content = append(root.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "retention"}, ret)
		}
		ret.Kind, ret.Tag, ret.Value = yaml.MappingNode, "!!map", ""
	}
	if ret.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d: retention is not a mapping", name, ret.Line)
	}
	if mapValue(ret, "max_size") == nil && dataBytes > 0 {
		ret.Style = 0
		ret.Content = append(ret.Content,
			&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "max_size"},
			&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatInt(dataBytes/4*3, 10)})
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	if _, err := collectorconfig.ParseCollector(name+" (with retention.max_size)", buf.Bytes()); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
