package stages_test

import (
	"strings"
	"testing"
)

// checkStubTasks looks at the stub_tasks stage of TestTaskKinds: one
// implement task per mathx module, stubbed bodies in the start tree, and
// the edge project's modules rejected where stubbing breaks
// re-verification; table.py, whose only function runs at import time, is
// not stubbed at all.
func checkStubTasks(t *testing.T, b *taskBuild) {
	bundles := b.bundles(t, "stubs", "mathx")
	if len(bundles) != 3 {
		t.Fatalf("mathx: %d stub tasks, want one per module (bases, numtheory, roman)", len(bundles))
	}
	for _, tb := range bundles {
		in := tb.Instance
		if in.TaskType != "implement" || !strings.HasPrefix(in.InstanceID, "mathx__stub-") || len(in.FailToPass) == 0 {
			t.Errorf("%s: type %s, F2P %v", in.InstanceID, in.TaskType, in.FailToPass)
		}
		if err := in.Validate(); err != nil {
			t.Error(err)
		}
		if !strings.Contains(in.Patch, "-    raise NotImplementedError") || !strings.Contains(in.ProblemStatement, "NotImplementedError") {
			t.Errorf("%s: patch or statement does not show the stubs:\n%s\n%s", in.InstanceID, in.Patch, in.ProblemStatement)
		}
	}
	counts := b.nodeCounts(t, "stubs", "edge")
	if counts["rejected:breaks collection"] != 0 || counts["stubs tried: modules"] != 2 || counts["rejected:reverify"] != 1 || counts["kept"] != 1 {
		t.Errorf("edge stub counters %v, want table.py left alone, double.py failing reverify, loop.py kept", counts)
	}
}
