package symptom

import (
	"unsafe"

	"github.com/mira-project/mira/appliance/symptom/workload"
)

func unsafeSizeofState() uintptr { return unsafe.Sizeof(State{}) }

func benchYAML(n int) []byte { return workload.YAML(workload.Patterns(n)) }
